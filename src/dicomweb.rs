//! DICOMweb, the PACS side of the service (issue #21): a series fetched with WADO-RS into a local
//! folder (then read like any DICOM folder), and the DICOM SEG stored back into its study with
//! STOW-RS.
//!
//! URIs: `dicomweb+http(s)://HOST[:PORT]/PATH/studies/{study}/series/{series}` names a series;
//! `dicomweb+http(s)://HOST[:PORT]/PATH` (the service root, e.g. `.../dicom-web`) names a STOW-RS
//! destination. Credentials come from the environment (basic or bearer), never from URIs, so they
//! stay out of jobs, logs and PostgreSQL. Errors split as the S3 store's do: transient (the server
//! is down or busy: retried) or permanent (401, 403, 404, a body that lies: the job fails with a
//! `DICOMWEB_*` code).

use crate::multipart::{media_type_essence, media_type_param, Event, MultipartError, Splitter};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The transfer syntax asked for first: every DICOMweb server must be able to send it, and the
/// series reader decodes it without a codec.
pub const EXPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2.1";

/// Transfer syntaxes the series reader decodes (volume/dicom_series.rs, dicom-pixeldata with its
/// native, RLE, JPEG, JPEG 2000 and JPEG XL decoders): what a part may come in.
pub const DECODABLE_TRANSFER_SYNTAXES: &[&str] = &[
    "1.2.840.10008.1.2",       // implicit VR little endian
    "1.2.840.10008.1.2.1",     // explicit VR little endian
    "1.2.840.10008.1.2.1.99",  // deflated explicit VR little endian
    "1.2.840.10008.1.2.2",     // explicit VR big endian (retired)
    "1.2.840.10008.1.2.5",     // RLE lossless
    "1.2.840.10008.1.2.4.50",  // JPEG baseline
    "1.2.840.10008.1.2.4.51",  // JPEG extended
    "1.2.840.10008.1.2.4.57",  // JPEG lossless
    "1.2.840.10008.1.2.4.70",  // JPEG lossless, first-order prediction
    "1.2.840.10008.1.2.4.90",  // JPEG 2000 lossless
    "1.2.840.10008.1.2.4.91",  // JPEG 2000
    "1.2.840.10008.1.2.4.110", // JPEG XL lossless
    "1.2.840.10008.1.2.4.111", // JPEG XL JPEG recompression
    "1.2.840.10008.1.2.4.112", // JPEG XL
];

#[derive(Debug, thiserror::Error)]
pub enum DicomWebError {
    #[error("{uri}: {reason}")]
    BadUri { uri: String, reason: String },
    #[error("{url}: 401 unauthorized (credentials: RADSAM_DICOMWEB_USER / RADSAM_DICOMWEB_PASSWORD or RADSAM_DICOMWEB_TOKEN)")]
    Unauthorized { url: String },
    #[error("{url}: 403 forbidden (the credentials may not read or store here)")]
    Forbidden { url: String },
    #[error("{url}: not found (404): no such study or series on the server")]
    NotFound { url: String },
    #[error("{url}: the server refused the request: {status} {reason}")]
    Refused { url: String, status: u16, reason: String },
    #[error("{url}: the server is unavailable: {reason}")]
    Unavailable { url: String, reason: String },
    #[error("{url}: {reason}")]
    Multipart { url: String, reason: String },
    #[error("{url}: more than {limit} bytes to download (RADSAM_MAX_DOWNLOAD_BYTES)")]
    TooLarge { url: String, limit: u64 },
    #[error("{url}: the server did not store the SEG: {reason}")]
    StoreFailed { url: String, reason: String },
    #[error("{path}: {reason}")]
    Io { path: String, reason: String },
}

impl crate::error::Coded for DicomWebError {
    fn code(&self) -> &'static str {
        match self {
            Self::BadUri { .. } => "DICOMWEB_BAD_URI",
            Self::Unauthorized { .. } => "DICOMWEB_UNAUTHORIZED",
            Self::Forbidden { .. } => "DICOMWEB_FORBIDDEN",
            Self::NotFound { .. } => "DICOMWEB_NOT_FOUND",
            Self::Refused { .. } => "DICOMWEB_REFUSED",
            Self::Unavailable { .. } => "DICOMWEB_UNAVAILABLE",
            Self::Multipart { .. } => "DICOMWEB_MULTIPART",
            Self::TooLarge { .. } => "DICOMWEB_TOO_LARGE",
            Self::StoreFailed { .. } => "DICOMWEB_STORE_FAILED",
            Self::Io { .. } => "DICOMWEB_IO",
        }
    }

    /// A server that is down, overloaded or cut the connection may answer later; the local disk
    /// may have been full for a moment. Everything else is the job's or the configuration's.
    fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable { .. } | Self::Io { .. })
    }
}

/// A DICOMweb series: the service root and the two UIDs.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesUri {
    /// http(s)://host[:port]/path: the service root, without a trailing '/'.
    pub root: String,
    pub study: String,
    pub series: String,
}

/// True for the URIs this module reads and writes (`dicomweb+http://`, `dicomweb+https://`).
pub fn is_dicomweb(uri: &str) -> bool {
    uri.starts_with("dicomweb+http://") || uri.starts_with("dicomweb+https://")
}

/// `dicomweb+http(s)://...` without its prefix, checked: an http(s) URL without credentials,
/// query or fragment.
pub fn service_root(uri: &str) -> Result<String, DicomWebError> {
    let bad = |reason: &str| DicomWebError::BadUri { uri: uri.into(), reason: reason.into() };
    let url = uri.strip_prefix("dicomweb+").filter(|u| u.starts_with("http://") || u.starts_with("https://"));
    let url = url.ok_or_else(|| bad("a DICOMweb URI starts with dicomweb+http:// or dicomweb+https://"))?;
    let after_scheme = url.split_once("://").map(|(_, r)| r).unwrap_or("");
    let host = after_scheme.split('/').next().unwrap_or("");
    if host.is_empty() {
        return Err(bad("no host"));
    }
    if host.contains('@') {
        return Err(bad("credentials in the URI are refused (they would be logged and stored): set RADSAM_DICOMWEB_USER / _PASSWORD or _TOKEN"));
    }
    if url.contains(['?', '#']) || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("a query, fragment or space has no place in a DICOMweb service URI"));
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// A DICOM UID: 1 to 64 characters of digits and dots.
fn is_uid(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_digit() || c == '.')
}

impl SeriesUri {
    pub fn parse(uri: &str) -> Result<Self, DicomWebError> {
        let url = service_root(uri)?;
        let bad = |reason: &str| DicomWebError::BadUri { uri: uri.into(), reason: reason.into() };
        let parts: Vec<&str> = url.rsplitn(5, '/').collect();
        // parts: [series, "series", study, "studies", root]
        match parts.as_slice() {
            [series, "series", study, "studies", root] if root.contains("://") && !root.ends_with(':') => {
                if !is_uid(study) || !is_uid(series) {
                    return Err(bad("the study and series UIDs must be DICOM UIDs (digits and dots, at most 64)"));
                }
                Ok(Self { root: root.to_string(), study: study.to_string(), series: series.to_string() })
            }
            _ => Err(bad("expected dicomweb+http(s)://HOST/PATH/studies/{study}/series/{series}")),
        }
    }

    /// The WADO-RS URL of the series.
    pub fn url(&self) -> String {
        format!("{}/studies/{}/series/{}", self.root, self.study, self.series)
    }
}

/// How to reach DICOMweb servers: credentials, timeout and the download limit.
#[derive(Debug, Clone)]
pub struct DicomWebConfig {
    pub user: Option<String>,
    pub password: Option<String>,
    pub token: Option<String>,
    /// Whole-request bound (a series download included).
    pub timeout: Duration,
}

impl DicomWebConfig {
    /// RADSAM_DICOMWEB_USER and RADSAM_DICOMWEB_PASSWORD (basic), or RADSAM_DICOMWEB_TOKEN
    /// (bearer); RADSAM_DICOMWEB_TIMEOUT_SECONDS (default 300).
    pub fn from_env() -> Self {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Self {
            user: var("RADSAM_DICOMWEB_USER"),
            password: var("RADSAM_DICOMWEB_PASSWORD"),
            token: var("RADSAM_DICOMWEB_TOKEN"),
            timeout: Duration::from_secs(
                var("RADSAM_DICOMWEB_TIMEOUT_SECONDS").and_then(|v| v.parse().ok()).filter(|&s| s > 0).unwrap_or(300),
            ),
        }
    }
}

/// What the server said when it took the SEG.
#[derive(Debug, Clone, PartialEq)]
pub struct StoreReceipt {
    /// Where the instance can be read back (the server's RetrieveURL, else the WADO-RS URL built
    /// from the UIDs).
    pub instance_url: String,
    /// The server stored it with a warning (HTTP 202 or a WarningReason): its text.
    pub warning: Option<String>,
}

/// The instance a STOW-RS request stores: its UIDs and bytes (a Part 10 file).
pub struct Instance<'a> {
    pub study_uid: &'a str,
    pub series_uid: &'a str,
    pub sop_instance_uid: &'a str,
    pub bytes: &'a [u8],
}

pub struct DicomWeb {
    http: reqwest::Client,
    config: DicomWebConfig,
}

impl DicomWeb {
    pub fn new(config: DicomWebConfig) -> Self {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(config.timeout)
            .build()
            .expect("an HTTP client from static settings");
        Self { http, config }
    }

    fn authorized(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match (&self.config.token, &self.config.user) {
            (Some(token), _) => req.bearer_auth(token),
            (None, Some(user)) => req.basic_auth(user, self.config.password.as_deref()),
            (None, None) => req,
        }
    }

    /// Downloads the series `uri` names into the folder `dest` (created), one file per instance;
    /// at most `limit` bytes (refused from the announced length, or as soon as passed). Returns
    /// the number of instances. On an error, `dest` is removed.
    pub async fn fetch_series(&self, uri: &str, dest: &Path, limit: u64) -> Result<usize, DicomWebError> {
        let series = SeriesUri::parse(uri)?;
        let url = series.url();
        let result = self.download(&url, dest, limit).await;
        if result.is_err() {
            let _ = tokio::fs::remove_dir_all(dest).await;
        }
        result
    }

    async fn download(&self, url: &str, dest: &Path, limit: u64) -> Result<usize, DicomWebError> {
        // Ask for the syntax every server must send and the reader decodes without a codec. A
        // server that cannot transcode the series says 406, or 500 (Orthanc without a JPEG 2000
        // codec): it is asked again for the files as stored, which the reader decodes or refuses
        // by name (VOLUME_UNSUPPORTED_TRANSFER_SYNTAX). A server that is really down fails again.
        let mut response = self.get_series(url, EXPLICIT_VR_LITTLE_ENDIAN).await?;
        if matches!(response.status().as_u16(), 406 | 500) {
            response = self.get_series(url, "*").await?;
        }
        let response = check_status(url, response).await?;
        if response.status() == reqwest::StatusCode::NO_CONTENT {
            return Err(DicomWebError::NotFound { url: url.into() });
        }
        let too_large = || DicomWebError::TooLarge { url: url.into(), limit };
        if response.content_length().is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        let multipart = |reason: String| DicomWebError::Multipart { url: url.into(), reason };
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        if media_type_essence(&content_type) != "multipart/related" {
            return Err(multipart(format!("the answer is {content_type:?}, not multipart/related")));
        }
        let boundary = media_type_param(&content_type, "boundary")
            .ok_or_else(|| multipart(format!("no boundary in {content_type:?}")))?;
        let mut splitter = Splitter::new(&boundary).map_err(|e| multipart(e.to_string()))?;
        std::fs::create_dir_all(dest).map_err(|e| io_error(dest, e))?;
        let mut files = PartFiles { dest: dest.to_path_buf(), file: None, count: 0 };
        let mut received = 0u64;
        let mut response = response;
        loop {
            let chunk = response.chunk().await.map_err(|e| DicomWebError::Unavailable {
                url: url.into(),
                reason: format!("reading the series: {}", error_chain(&e)),
            })?;
            let Some(chunk) = chunk else { break };
            received += chunk.len() as u64;
            if received > limit {
                return Err(too_large());
            }
            // Part files are written with std::fs: short writes of one chunk, not worth a thread hop.
            splitter.push(&chunk, &mut |event| files.take(event)).map_err(|e| match e {
                MultipartError::Sink(e) if e.kind() == std::io::ErrorKind::InvalidData => multipart(e.to_string()),
                MultipartError::Sink(e) => io_error(dest, e),
                e => multipart(e.to_string()),
            })?;
        }
        let parts = splitter.finish().map_err(|e| multipart(e.to_string()))?;
        Ok(parts)
    }

    async fn get_series(&self, url: &str, transfer_syntax: &str) -> Result<reqwest::Response, DicomWebError> {
        let accept = format!("multipart/related; type=\"application/dicom\"; transfer-syntax={transfer_syntax}");
        self.authorized(self.http.get(url).header(reqwest::header::ACCEPT, accept))
            .send()
            .await
            .map_err(|e| unavailable(url, &e))
    }

    /// Stores `instance` into its study on the STOW-RS service at `root` (dicomweb+http(s)://...).
    /// Storing the same SOP Instance UID again is the server's no-op or replacement, never a
    /// second instance: that is what makes a retried job's store idempotent.
    pub async fn store(&self, root: &str, instance: &Instance<'_>) -> Result<StoreReceipt, DicomWebError> {
        let base = service_root(root)?;
        let url = format!("{base}/studies/{}", instance.study_uid);
        // A boundary from the instance's UID: it cannot occur in the SEG's binary frames by chance
        // with any useful probability, and a retry sends the same body.
        let boundary = format!("radsam-{}", instance.sop_instance_uid.replace('.', "-"));
        let body = crate::multipart::build(&boundary, &[("application/dicom", instance.bytes)]);
        let response = self
            .authorized(
                self.http
                    .post(&url)
                    .header(
                        reqwest::header::CONTENT_TYPE,
                        format!("multipart/related; type=\"application/dicom\"; boundary={boundary}"),
                    )
                    .header(reqwest::header::ACCEPT, "application/dicom+json")
                    .body(body),
            )
            .send()
            .await
            .map_err(|e| unavailable(&url, &e))?;
        let status = response.status();
        // 409: the request was understood but (some) instances failed; the JSON says why.
        let response =
            if status == reqwest::StatusCode::CONFLICT { response } else { check_status(&url, response).await? };
        let text = response.text().await.map_err(|e| unavailable(&url, &e))?;
        let fallback = format!(
            "{base}/studies/{}/series/{}/instances/{}",
            instance.study_uid, instance.series_uid, instance.sop_instance_uid
        );
        interpret_store_response(&url, status.as_u16(), &text, instance.sop_instance_uid, fallback)
    }
}

/// Writes each part to its own numbered file in `dest`.
struct PartFiles {
    dest: PathBuf,
    file: Option<std::io::BufWriter<std::fs::File>>,
    count: usize,
}

impl PartFiles {
    fn take(&mut self, event: Event) -> std::io::Result<()> {
        match event {
            Event::Begin(headers) => {
                // Each part must be a DICOM instance (an error document in a part is not a slice).
                let ct = headers.content_type.as_deref().unwrap_or("");
                if media_type_essence(ct) != "application/dicom" {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("part {} is {ct:?}, not application/dicom", self.count + 1),
                    ));
                }
                if let Some(ts) = media_type_param(ct, "transfer-syntax") {
                    if !DECODABLE_TRANSFER_SYNTAXES.contains(&ts.as_str()) {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::InvalidData,
                            format!(
                                "part {} comes in transfer syntax {ts}, which the reader does not decode",
                                self.count + 1
                            ),
                        ));
                    }
                }
                self.count += 1;
                let path = self.dest.join(format!("{:06}.dcm", self.count));
                self.file = Some(std::io::BufWriter::new(std::fs::File::create(path)?));
            }
            Event::Data(bytes) => self.file.as_mut().expect("data after a part began").write_all(bytes)?,
            Event::End => {
                self.file.take().expect("a part began").flush()?;
            }
        }
        Ok(())
    }
}

/// 2xx passes; the rest becomes its error (the body's first words as the reason).
async fn check_status(url: &str, response: reqwest::Response) -> Result<reqwest::Response, DicomWebError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let url = url.to_string();
    Err(match status.as_u16() {
        401 => DicomWebError::Unauthorized { url },
        403 => DicomWebError::Forbidden { url },
        404 | 410 => DicomWebError::NotFound { url },
        408 | 429 | 500..=599 => {
            DicomWebError::Unavailable { url, reason: format!("{status} {}", body_excerpt(response).await) }
        }
        code => DicomWebError::Refused { url, status: code, reason: body_excerpt(response).await },
    })
}

async fn body_excerpt(response: reqwest::Response) -> String {
    let text = response.text().await.unwrap_or_default();
    crate::job::text::printable(text.trim(), 300)
}

fn unavailable(url: &str, e: &reqwest::Error) -> DicomWebError {
    DicomWebError::Unavailable { url: url.into(), reason: error_chain(e) }
}

/// An error with its causes (reqwest's own message alone says only "error sending request").
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn io_error(path: &Path, e: std::io::Error) -> DicomWebError {
    DicomWebError::Io { path: path.display().to_string(), reason: e.to_string() }
}

/// Reads a STOW-RS answer (PS3.18 10.5.3: the Store Instances Response Module in DICOM JSON):
/// FailedSOPSequence (0008,1198) names instances not stored, ReferencedSOPSequence (0008,1199)
/// those stored, each with its RetrieveURL (0008,1190) and maybe a WarningReason (0008,1196).
fn interpret_store_response(
    url: &str,
    status: u16,
    body: &str,
    sop_instance_uid: &str,
    fallback_url: String,
) -> Result<StoreReceipt, DicomWebError> {
    let failed = |reason: String| DicomWebError::StoreFailed { url: url.into(), reason };
    let json: serde_json::Value = if body.trim().is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(body)
            .map_err(|e| failed(format!("HTTP {status}, an answer that is not DICOM JSON ({e})")))?
    };
    // Some servers answer a one-element array of the module.
    let module = match &json {
        serde_json::Value::Array(items) => items.first().cloned().unwrap_or_default(),
        v => v.clone(),
    };
    let items = |tag: &str| -> Vec<serde_json::Value> {
        module.get(tag).and_then(|e| e.get("Value")).and_then(|v| v.as_array()).cloned().unwrap_or_default()
    };
    let string = |item: &serde_json::Value, tag: &str| -> Option<String> {
        let v = item.get(tag)?.get("Value")?.as_array()?.first()?;
        Some(v.as_str().map(String::from).unwrap_or_else(|| v.to_string()))
    };
    let ours = |item: &&serde_json::Value| string(item, "00081155").is_none_or(|uid| uid == sop_instance_uid);
    if let Some(f) = items("00081198").iter().find(ours) {
        let reason = string(f, "00081197").unwrap_or_else(|| "no reason given".into());
        return Err(failed(format!("HTTP {status}, failure reason {reason} (PS3.18 Table I.2-1)")));
    }
    if status == 409 {
        return Err(failed("HTTP 409 conflict, without a failure entry".into()));
    }
    let stored = items("00081199");
    let Some(item) = stored.iter().find(ours) else {
        return Err(failed(format!("HTTP {status}, but the answer does not list the SEG as stored")));
    };
    let warning = string(item, "00081196")
        .map(|w| format!("warning reason {w}"))
        .or_else(|| (status == 202).then(|| "HTTP 202 accepted with warnings".to_string()));
    Ok(StoreReceipt { instance_url: string(item, "00081190").unwrap_or(fallback_url), warning })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Coded;
    use std::io::{BufRead, BufReader, Read};

    /// A misbehaving DICOMweb server on a local port: answers the n-th request with `answers[n]`
    /// (raw HTTP) and closes; returns its root URI and the requests it saw (request line and
    /// headers).
    fn server(answers: Vec<Vec<u8>>) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for answer in answers {
                let Ok((mut stream, _)) = listener.accept() else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut head = String::new();
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                    head.push_str(&line);
                }
                let mut body = vec![0u8; length];
                let _ = reader.read_exact(&mut body);
                log.lock().unwrap().push(head);
                let _ = stream.write_all(&answer);
            }
        });
        (format!("dicomweb+http://127.0.0.1:{port}/dicom-web"), seen)
    }

    fn multipart_answer(body: &[u8], boundary: &str) -> Vec<u8> {
        let mut a = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: multipart/related; type=\"application/dicom\"; boundary={boundary}\r\nConnection: close\r\n\r\n"
        )
        .into_bytes();
        a.extend_from_slice(body);
        a
    }

    fn status(code: &str) -> Vec<u8> {
        format!("HTTP/1.1 {code}\r\nContent-Length: 5\r\nConnection: close\r\n\r\nnope.").into_bytes()
    }

    fn client() -> DicomWeb {
        DicomWeb::new(DicomWebConfig {
            user: Some("radsam".into()),
            password: Some("pw".into()),
            token: None,
            timeout: Duration::from_secs(10),
        })
    }

    #[tokio::test]
    async fn a_series_is_split_into_files_and_a_server_that_cannot_transcode_is_asked_again() {
        let body = crate::multipart::build("b0", &[("application/dicom", b"first"), ("application/dicom", b"second")]);
        let (root, seen) = server(vec![status("500 Internal Server Error"), multipart_answer(&body, "b0")]);
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("series");
        let n = client().fetch_series(&format!("{root}/studies/1.2/series/3.4"), &dest, 1 << 20).await.unwrap();
        assert_eq!(n, 2);
        assert_eq!(std::fs::read(dest.join("000001.dcm")).unwrap(), b"first");
        assert_eq!(std::fs::read(dest.join("000002.dcm")).unwrap(), b"second");
        let seen = seen.lock().unwrap();
        assert!(seen[0].starts_with("GET /dicom-web/studies/1.2/series/3.4 "), "{}", seen[0]);
        assert!(seen[0].contains("transfer-syntax=1.2.840.10008.1.2.1"), "{}", seen[0]);
        assert!(seen[1].contains("transfer-syntax=*"), "{}", seen[1]);
        assert!(seen[0].to_ascii_lowercase().contains("authorization: basic "), "{}", seen[0]);
    }

    #[tokio::test]
    async fn lying_bodies_and_refusals_get_their_codes_and_leave_no_files() {
        let uri = |root: &str| format!("{root}/studies/1.2/series/3.4");
        let fetch = |answers: Vec<Vec<u8>>, limit: u64| async move {
            let (root, _) = server(answers);
            let dir = tempfile::tempdir().unwrap();
            let dest = dir.path().join("series");
            let e = client().fetch_series(&uri(&root), &dest, limit).await.unwrap_err();
            assert!(!dest.exists(), "{e}: files left behind");
            e
        };
        let good = crate::multipart::build("b0", &[("application/dicom", b"0123456789")]);
        let text = String::from_utf8(good.clone()).unwrap();
        // Truncated (the connection closed before the closing boundary), a part longer than it
        // says, a boundary other than the announced one, a part that is not DICOM.
        for (body, boundary) in [
            (good[..good.len() - 8].to_vec(), "b0"),
            (text.replace("Content-Length: 10", "Content-Length: 3").into_bytes(), "b0"),
            (good.clone(), "other"),
            (text.replace("application/dicom", "application/json").into_bytes(), "b0"),
        ] {
            let e = fetch(vec![multipart_answer(&body, boundary)], 1 << 20).await;
            assert_eq!(e.code(), "DICOMWEB_MULTIPART", "{e}");
        }
        let e = fetch(vec![multipart_answer(&good, "b0")], 20).await;
        assert_eq!(e.code(), "DICOMWEB_TOO_LARGE", "{e}");
        for (answer, code) in [
            ("401 Unauthorized", "DICOMWEB_UNAUTHORIZED"),
            ("403 Forbidden", "DICOMWEB_FORBIDDEN"),
            ("404 Not Found", "DICOMWEB_NOT_FOUND"),
            ("400 Bad Request", "DICOMWEB_REFUSED"),
            ("503 Service Unavailable", "DICOMWEB_UNAVAILABLE"),
        ] {
            // (A 500 is asked again: both answers are the failure.)
            let e = fetch(vec![status(answer), status(answer)], 1 << 20).await;
            assert_eq!(e.code(), code, "{answer}: {e}");
            assert_eq!(e.is_transient(), code == "DICOMWEB_UNAVAILABLE", "{answer}");
        }
        let nobody = format!("dicomweb+http://127.0.0.1:{}/x/studies/1/series/2", {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        });
        let e = client().fetch_series(&nobody, std::path::Path::new("/nonexistent/x"), 1).await.unwrap_err();
        assert!(e.is_transient() && e.code() == "DICOMWEB_UNAVAILABLE", "{e}");
    }

    #[tokio::test]
    async fn a_store_posts_one_instance_into_its_study_and_reads_the_answer() {
        let stored = r#"{"00081199": {"vr": "SQ", "Value": [{"00081155": {"vr": "UI", "Value": ["1.2.3.9"]}}]}}"#;
        let ok = format!(
            "HTTP/1.1 202 Accepted\r\nContent-Type: application/dicom+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{stored}",
            stored.len()
        );
        let (root, seen) = server(vec![ok.into_bytes(), status("403 Forbidden")]);
        let instance = Instance { study_uid: "1.2", series_uid: "1.2.3", sop_instance_uid: "1.2.3.9", bytes: b"DICM" };
        let receipt = client().store(&root, &instance).await.unwrap();
        assert_eq!(
            receipt.instance_url,
            format!("{}/studies/1.2/series/1.2.3/instances/1.2.3.9", &root["dicomweb+".len()..])
        );
        assert!(receipt.warning.unwrap().contains("202"));
        let head = seen.lock().unwrap()[0].clone();
        assert!(head.starts_with("POST /dicom-web/studies/1.2 "), "{head}");
        assert!(head.contains("boundary=radsam-1-2-3-9") && head.contains("type=\"application/dicom\""), "{head}");
        assert_eq!(client().store(&root, &instance).await.unwrap_err().code(), "DICOMWEB_FORBIDDEN");
    }

    #[test]
    fn series_uris_parse_and_bad_ones_get_codes() {
        let s = SeriesUri::parse("dicomweb+http://127.0.0.1:8042/dicom-web/studies/1.2.3/series/4.5.6").unwrap();
        assert_eq!(
            s,
            SeriesUri { root: "http://127.0.0.1:8042/dicom-web".into(), study: "1.2.3".into(), series: "4.5.6".into() }
        );
        assert_eq!(s.url(), "http://127.0.0.1:8042/dicom-web/studies/1.2.3/series/4.5.6");
        let s = SeriesUri::parse("dicomweb+https://pacs.example/studies/1/series/2").unwrap();
        assert_eq!(s.root, "https://pacs.example");
        for bad in [
            "http://pacs/studies/1/series/2",
            "dicomweb+ftp://pacs/studies/1/series/2",
            "dicomweb+http://user:pw@pacs/studies/1/series/2",
            "dicomweb+http://pacs/studies/1/series/2?x=1",
            "dicomweb+http://pacs/studies/1/series/",
            "dicomweb+http://pacs/studies/1.a/series/2",
            "dicomweb+http://pacs/studies/1/instances/2",
            "dicomweb+http:///studies/1/series/2",
        ] {
            assert_eq!(SeriesUri::parse(bad).unwrap_err().code(), "DICOMWEB_BAD_URI", "{bad}");
        }
        assert_eq!(service_root("dicomweb+http://pacs:8042/dicom-web/").unwrap(), "http://pacs:8042/dicom-web");
    }

    #[test]
    fn store_answers_are_read_as_success_warning_or_failure() {
        let uid = "1.2.3.4";
        let fallback = || "http://pacs/studies/1/series/2/instances/1.2.3.4".to_string();
        let read = |status, body: &str| interpret_store_response("u", status, body, uid, fallback());
        let stored = r#"{"00081199": {"vr": "SQ", "Value": [{"00081155": {"vr": "UI", "Value": ["1.2.3.4"]},
            "00081190": {"vr": "UR", "Value": ["http://pacs/dicom-web/studies/1/series/2/instances/1.2.3.4"]}}]}}"#;
        let r = read(200, stored).unwrap();
        assert_eq!(r.instance_url, "http://pacs/dicom-web/studies/1/series/2/instances/1.2.3.4");
        assert_eq!(r.warning, None);
        assert!(read(202, stored).unwrap().warning.unwrap().contains("202"));
        let warned = stored.replace(r#""00081190""#, r#""00081196": {"vr": "US", "Value": [45056]}, "00081190""#);
        assert_eq!(read(200, &warned).unwrap().warning.as_deref(), Some("warning reason 45056"));
        let failed = r#"{"00081198": {"vr": "SQ", "Value": [{"00081155": {"vr": "UI", "Value": ["1.2.3.4"]},
            "00081197": {"vr": "US", "Value": [43264]}}]}}"#;
        let e = read(409, failed).unwrap_err();
        assert_eq!(e.code(), "DICOMWEB_STORE_FAILED");
        assert!(e.to_string().contains("43264"), "{e}");
        assert_eq!(read(200, "{}").unwrap_err().code(), "DICOMWEB_STORE_FAILED", "not listed as stored");
        assert_eq!(read(200, "<html>").unwrap_err().code(), "DICOMWEB_STORE_FAILED");
        assert_eq!(read(409, "").unwrap_err().code(), "DICOMWEB_STORE_FAILED");
        // Another instance's entries are not ours; an array-wrapped module is read the same.
        let other = stored.replace("\"1.2.3.4\"]", "\"9.9\"]");
        assert_eq!(read(200, &other).unwrap_err().code(), "DICOMWEB_STORE_FAILED");
        assert_eq!(read(200, &format!("[{stored}]")).unwrap().warning, None);
    }
}
