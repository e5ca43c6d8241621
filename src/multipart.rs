//! `multipart/related` bodies (RFC 2046, 2387), as DICOMweb sends series (WADO-RS) and receives
//! instances (STOW-RS): split as they stream in, part by part, never held whole; and built.
//!
//! The splitter trusts nothing it reads: a missing or repeated boundary, a body that ends before
//! its closing delimiter, a part longer or shorter than its own `Content-Length`, headers without
//! end: each is an error (`MultipartError`), never a silent short series.

/// Longest part header block: DICOMweb parts carry two or three short headers.
const MAX_HEADER_BYTES: usize = 16 << 10;
/// Longest preamble before the first boundary (RFC 2046 allows one; servers send none).
const MAX_PREAMBLE_BYTES: usize = 64 << 10;

#[derive(Debug, thiserror::Error)]
pub enum MultipartError {
    #[error("malformed multipart body: {0}")]
    Malformed(String),
    #[error("storing a part: {0}")]
    Sink(#[from] std::io::Error),
}

/// The headers of one part that DICOMweb uses.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PartHeaders {
    pub content_type: Option<String>,
    pub content_length: Option<u64>,
}

/// What the splitter reports, in order: a part begins (its headers), its bytes (any number of
/// pieces), it ends.
#[derive(Debug)]
pub enum Event<'a> {
    Begin(&'a PartHeaders),
    Data(&'a [u8]),
    End,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Preamble,
    AfterDelimiter,
    Headers,
    Body,
    Done,
}

/// A push parser: feed it the body's chunks as they arrive (`push`), then `finish`.
pub struct Splitter {
    /// CRLF "--" boundary: what ends a part's body.
    delimiter: Vec<u8>,
    buf: Vec<u8>,
    state: State,
    headers: PartHeaders,
    part_bytes: u64,
    parts: usize,
}

impl Splitter {
    /// A splitter for `boundary` (the Content-Type's parameter, unquoted).
    pub fn new(boundary: &str) -> Result<Self, MultipartError> {
        // RFC 2046: 1 to 70 characters; no CR or LF in any case (they would end the line).
        if boundary.is_empty() || boundary.len() > 70 || boundary.bytes().any(|b| b == b'\r' || b == b'\n') {
            return Err(MultipartError::Malformed(format!("unusable boundary {boundary:?}")));
        }
        let mut delimiter = b"\r\n--".to_vec();
        delimiter.extend_from_slice(boundary.as_bytes());
        // The first boundary may open the body without a CRLF before it: act as if one came first.
        Ok(Self {
            delimiter,
            buf: b"\r\n".to_vec(),
            state: State::Preamble,
            headers: PartHeaders::default(),
            part_bytes: 0,
            parts: 0,
        })
    }

    /// Parts completed so far.
    pub fn parts(&self) -> usize {
        self.parts
    }

    /// Feeds the next bytes of the body; `sink` receives the events they complete.
    pub fn push(
        &mut self,
        chunk: &[u8],
        sink: &mut dyn FnMut(Event) -> std::io::Result<()>,
    ) -> Result<(), MultipartError> {
        if self.state == State::Done {
            return Ok(()); // the epilogue: ignored
        }
        self.buf.extend_from_slice(chunk);
        loop {
            let progressed = match self.state {
                State::Preamble => self.preamble()?,
                State::AfterDelimiter => self.after_delimiter()?,
                State::Headers => self.part_headers(sink)?,
                State::Body => self.body(sink)?,
                State::Done => {
                    self.buf.clear();
                    false
                }
            };
            if !progressed {
                return Ok(());
            }
        }
    }

    /// The body has ended: it must have ended with the closing delimiter, after at least one part.
    pub fn finish(self) -> Result<usize, MultipartError> {
        match self.state {
            State::Done if self.parts > 0 => Ok(self.parts),
            State::Done => Err(MultipartError::Malformed("the body holds no part".into())),
            State::Preamble => Err(MultipartError::Malformed("no boundary found in the body".into())),
            _ => Err(MultipartError::Malformed(format!(
                "the body ends inside part {} (no closing boundary: truncated, or its boundary is not the announced one)",
                self.parts + 1
            ))),
        }
    }

    fn find(&self, needle: &[u8]) -> Option<usize> {
        self.buf.windows(needle.len()).position(|w| w == needle)
    }

    fn preamble(&mut self) -> Result<bool, MultipartError> {
        if let Some(i) = self.find(&self.delimiter) {
            self.buf.drain(..i + self.delimiter.len());
            self.state = State::AfterDelimiter;
            return Ok(true);
        }
        if self.buf.len() > MAX_PREAMBLE_BYTES {
            return Err(MultipartError::Malformed(format!(
                "no boundary in the first {MAX_PREAMBLE_BYTES} bytes (the body does not use the announced boundary)"
            )));
        }
        Ok(false)
    }

    /// After a delimiter: "--" closes the body; otherwise optional padding (spaces, tabs) and CRLF
    /// open the next part.
    fn after_delimiter(&mut self) -> Result<bool, MultipartError> {
        if self.buf.len() < 2 {
            return Ok(false);
        }
        if self.buf.starts_with(b"--") {
            self.state = State::Done;
            self.buf.clear();
            return Ok(true);
        }
        let padding = self.buf.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
        if self.buf.len() < padding + 2 {
            if padding > 1024 {
                return Err(MultipartError::Malformed("a boundary line of endless padding".into()));
            }
            return Ok(false);
        }
        if &self.buf[padding..padding + 2] != b"\r\n" {
            // e.g. "--boundaryX": a longer boundary inside a part is data, but there is no part yet
            // to hold it here; the body does not follow the format.
            return Err(MultipartError::Malformed("a boundary is not followed by a line end or `--`".into()));
        }
        self.buf.drain(..padding + 2);
        self.state = State::Headers;
        Ok(true)
    }

    fn part_headers(&mut self, sink: &mut dyn FnMut(Event) -> std::io::Result<()>) -> Result<bool, MultipartError> {
        // No headers at all: the blank line comes at once.
        let end = if self.buf.starts_with(b"\r\n") { Some((0, 2)) } else { self.find(b"\r\n\r\n").map(|i| (i, i + 4)) };
        let Some((text_end, consumed)) = end else {
            if self.buf.len() > MAX_HEADER_BYTES {
                return Err(MultipartError::Malformed(format!(
                    "part {}: headers longer than {MAX_HEADER_BYTES} bytes",
                    self.parts + 1
                )));
            }
            return Ok(false);
        };
        if text_end > MAX_HEADER_BYTES {
            return Err(MultipartError::Malformed(format!(
                "part {}: headers longer than {MAX_HEADER_BYTES} bytes",
                self.parts + 1
            )));
        }
        let text = String::from_utf8_lossy(&self.buf[..text_end]).into_owned();
        self.headers =
            parse_headers(&text).map_err(|e| MultipartError::Malformed(format!("part {}: {e}", self.parts + 1)))?;
        self.buf.drain(..consumed);
        self.part_bytes = 0;
        self.state = State::Body;
        sink(Event::Begin(&self.headers))?;
        Ok(true)
    }

    fn body(&mut self, sink: &mut dyn FnMut(Event) -> std::io::Result<()>) -> Result<bool, MultipartError> {
        if let Some(i) = self.find(&self.delimiter) {
            self.data(i, sink)?;
            if let Some(declared) = self.headers.content_length {
                if self.part_bytes != declared {
                    return Err(MultipartError::Malformed(format!(
                        "part {} holds {} bytes but its Content-Length says {declared}",
                        self.parts + 1,
                        self.part_bytes
                    )));
                }
            }
            sink(Event::End)?;
            self.parts += 1;
            self.buf.drain(..self.delimiter.len());
            self.state = State::AfterDelimiter;
            return Ok(true);
        }
        // All but what could be the start of a delimiter split across chunks.
        let safe = self.buf.len().saturating_sub(self.delimiter.len() - 1);
        if safe > 0 {
            self.data(safe, sink)?;
        }
        Ok(false)
    }

    /// Hands the first `n` buffered bytes to the part, checking its declared length.
    fn data(&mut self, n: usize, sink: &mut dyn FnMut(Event) -> std::io::Result<()>) -> Result<(), MultipartError> {
        self.part_bytes += n as u64;
        if let Some(declared) = self.headers.content_length {
            if self.part_bytes > declared {
                return Err(MultipartError::Malformed(format!(
                    "part {} is longer than its Content-Length ({declared} bytes)",
                    self.parts + 1
                )));
            }
        }
        if n > 0 {
            sink(Event::Data(&self.buf[..n]))?;
        }
        self.buf.drain(..n);
        Ok(())
    }
}

fn parse_headers(text: &str) -> Result<PartHeaders, String> {
    let mut headers = PartHeaders::default();
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').ok_or_else(|| format!("header line {line:?} has no `:`"))?;
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-type" => headers.content_type = Some(value.to_string()),
            "content-length" => {
                let n = value.parse::<u64>().map_err(|_| format!("Content-Length {value:?} is not a number"))?;
                if headers.content_length.is_some_and(|m| m != n) {
                    return Err("two different Content-Length headers".into());
                }
                headers.content_length = Some(n);
            }
            _ => {}
        }
    }
    Ok(headers)
}

/// The value of parameter `name` of a media type (`multipart/related; type="application/dicom";
/// boundary=abc`), unquoted; names compare without case.
pub fn media_type_param(media_type: &str, name: &str) -> Option<String> {
    media_type.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim().trim_matches('"').to_string())
    })
}

/// The media type itself (`multipart/related`), lowercased, without parameters.
pub fn media_type_essence(media_type: &str) -> String {
    media_type.split(';').next().unwrap_or("").trim().to_ascii_lowercase()
}

/// A `multipart/related` body of `parts` (content type, bytes) with `boundary`.
pub fn build(boundary: &str, parts: &[(&str, &[u8])]) -> Vec<u8> {
    let mut body = Vec::with_capacity(parts.iter().map(|(_, b)| b.len() + 128).sum());
    for (content_type, bytes) in parts {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n", bytes.len())
                .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits `body` fed in chunks of `size`: each part's headers and bytes.
    fn split(body: &[u8], boundary: &str, size: usize) -> Result<Vec<(PartHeaders, Vec<u8>)>, MultipartError> {
        let mut s = Splitter::new(boundary)?;
        let mut parts: Vec<(PartHeaders, Vec<u8>)> = Vec::new();
        let mut open = false;
        for chunk in body.chunks(size.max(1)) {
            s.push(chunk, &mut |e| {
                match e {
                    Event::Begin(h) => {
                        assert!(!open, "a part begins inside another");
                        open = true;
                        parts.push((h.clone(), Vec::new()));
                    }
                    Event::Data(d) => parts.last_mut().expect("data inside a part").1.extend_from_slice(d),
                    Event::End => open = false,
                }
                Ok(())
            })?;
        }
        let n = s.finish()?;
        assert_eq!(n, parts.len());
        Ok(parts)
    }

    #[test]
    fn built_bodies_split_back_at_every_chunk_size() {
        // Bytes that look like line ends, dashes and near-boundaries inside the parts.
        let a: Vec<u8> = (0..3000u32).map(|i| (i * 7 % 251) as u8).collect();
        let b = b"\r\n--boundar\r\n--xboundary\r\n-boundary\r\n".to_vec();
        let body = build(
            "boundary",
            &[("application/dicom", &a), ("application/dicom; transfer-syntax=1.2.840.10008.1.2.1", &b)],
        );
        for size in [1, 2, 3, 7, 64, 1000, body.len()] {
            let parts = split(&body, "boundary", size).unwrap();
            assert_eq!(parts.len(), 2, "chunks of {size}");
            assert_eq!(parts[0].1, a);
            assert_eq!(parts[1].1, b);
            assert_eq!(parts[0].0.content_length, Some(a.len() as u64));
            assert_eq!(
                parts[1].0.content_type.as_deref(),
                Some("application/dicom; transfer-syntax=1.2.840.10008.1.2.1")
            );
        }
    }

    #[test]
    fn preambles_padding_missing_lengths_and_epilogues_are_accepted() {
        let body = b"preamble to ignore\r\n--b  \r\nContent-Type: application/dicom\r\n\r\nxyz\r\n--b\r\n\r\nno headers\r\n--b--\r\nepilogue";
        let parts = split(body, "b", 5).unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].1, b"xyz");
        assert_eq!(parts[0].0.content_length, None);
        assert_eq!(parts[1].0, PartHeaders::default());
        assert_eq!(parts[1].1, b"no headers");
    }

    #[test]
    fn bodies_that_lie_are_refused() {
        let good = build("b", &[("application/dicom", b"0123456789")]);
        let text = String::from_utf8(good.clone()).unwrap();
        let malformed = |body: &[u8], boundary: &str| {
            let e = split(body, boundary, 4).unwrap_err();
            assert!(matches!(e, MultipartError::Malformed(_)), "{e}");
            e.to_string()
        };
        // Truncated: no closing delimiter.
        assert!(malformed(&good[..good.len() - 6], "b").contains("ends inside part 1"));
        // Another boundary than the announced one.
        assert!(malformed(&good, "other").contains("no boundary"));
        // A part longer, or shorter, than its Content-Length.
        assert!(
            malformed(text.replace("Content-Length: 10", "Content-Length: 4").as_bytes(), "b").contains("longer than")
        );
        assert!(malformed(text.replace("Content-Length: 10", "Content-Length: 99").as_bytes(), "b").contains("says 99"));
        assert!(malformed(text.replace("Content-Length: 10", "Content-Length: ten").as_bytes(), "b")
            .contains("not a number"));
        // No part at all, headers that never end, garbage after a boundary.
        assert!(malformed(b"--b--\r\n", "b").contains("no part"));
        let endless = format!("--b\r\nX-Pad: {}", "a".repeat(MAX_HEADER_BYTES + 10));
        assert!(malformed(endless.as_bytes(), "b").contains("headers longer"));
        assert!(malformed(b"--bX\r\n\r\n1\r\n--b--", "b").contains("not followed"));
        assert!(
            Splitter::new("").is_err() && Splitter::new("a\r\nb").is_err() && Splitter::new(&"x".repeat(71)).is_err()
        );
    }

    #[test]
    fn a_failing_sink_stops_the_split() {
        let body = build("b", &[("application/dicom", b"abc")]);
        let mut s = Splitter::new("b").unwrap();
        let e = s.push(&body, &mut |_| Err(std::io::Error::other("disk full"))).unwrap_err();
        assert!(matches!(e, MultipartError::Sink(_)));
    }

    #[test]
    fn media_type_parameters() {
        let ct = "multipart/related; type=\"application/dicom\"; Boundary=\"abc def\"";
        assert_eq!(media_type_param(ct, "boundary").as_deref(), Some("abc def"));
        assert_eq!(media_type_param(ct, "type").as_deref(), Some("application/dicom"));
        assert_eq!(media_type_param(ct, "transfer-syntax"), None);
        assert_eq!(media_type_essence(ct), "multipart/related");
    }
}
