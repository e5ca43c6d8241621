//! A structural pre-check of DICOM files before dicom-rs parses them.
//!
//! dicom-rs (0.8) allocates and zero-fills the declared length of some elements before reading
//! them (`Vec::resize(len)` in the file meta reader), so a corrupt or hostile 2 KB file declaring a
//! 4 GB element makes the reader touch 4 GB of memory: found by fuzzing (fuzz/RESULTS.md). Every
//! declared length must fit in the bytes that remain in the file; this walk checks that for the
//! file meta group and the data set, through sequences and items, without allocating.

use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::StandardDataDictionary;

const UNDEFINED: u32 = 0xFFFF_FFFF;
const IMPLICIT_LE: &str = "1.2.840.10008.1.2";
const DEFLATED: &str = "1.2.840.10008.1.2.1.99";
const EXPLICIT_BE: &str = "1.2.840.10008.1.2.2";

/// Every value representation of the standard (PS3.5 6.2). In an explicit-VR encoding anything
/// else is corruption, and dicom-rs reads such an element's length differently from this walk
/// (as an unknown VR with a 4-byte length): a 1.2 KB file made its file meta reader reserve
/// 1.4 GB past this check (fuzz/RESULTS.md, 2026-12-04).
fn known_vr(vr: &[u8]) -> bool {
    const VRS: [&[u8; 2]; 34] = [
        b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT", b"OB", b"OD", b"OF", b"OL",
        b"OV", b"OW", b"PN", b"SH", b"SL", b"SQ", b"SS", b"ST", b"SV", b"TM", b"UC", b"UI", b"UL", b"UN", b"UR", b"US",
        b"UT", b"UV",
    ];
    VRS.iter().any(|v| v.as_slice() == vr)
}

/// VRs whose explicit encoding has a 4-byte length after 2 reserved bytes.
fn long_length(vr: &[u8]) -> bool {
    matches!(vr, b"OB" | b"OD" | b"OF" | b"OL" | b"OV" | b"OW" | b"SQ" | b"SV" | b"UC" | b"UN" | b"UR" | b"UT" | b"UV")
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    big_endian: bool,
}

impl Cursor<'_> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        if self.remaining() < n {
            return Err(format!("element header cut at byte {}", self.pos));
        }
        self.pos += n;
        Ok(&self.bytes[self.pos - n..self.pos])
    }
    fn u16(&mut self) -> Result<u16, String> {
        let big = self.big_endian;
        let b = self.take(2)?;
        Ok(if big { u16::from_be_bytes([b[0], b[1]]) } else { u16::from_le_bytes([b[0], b[1]]) })
    }
    fn u32(&mut self) -> Result<u32, String> {
        let big = self.big_endian;
        let b = self.take(4)?;
        let a = [b[0], b[1], b[2], b[3]];
        Ok(if big { u32::from_be_bytes(a) } else { u32::from_le_bytes(a) })
    }
}

/// Walks elements from the cursor to the end (or to the end of the file meta group when
/// `meta_only`), checking every defined length against the bytes left. Returns the transfer
/// syntax UID when it reads the file meta group.
fn walk(c: &mut Cursor, explicit: bool, meta_only: bool) -> Result<Option<String>, String> {
    let mut transfer_syntax = None;
    while c.remaining() > 0 {
        if meta_only && c.remaining() >= 2 && u16::from_le_bytes([c.bytes[c.pos], c.bytes[c.pos + 1]]) != 0x0002 {
            break;
        }
        let start = c.pos;
        let tag = Tag(c.u16()?, c.u16()?);
        let is_delimiter = tag.group() == 0xFFFE;
        // Whether an undefined length may follow: sequences, and the elements that may hold
        // items (explicit UN, OB, OW; in implicit VR a tag the dictionary cannot type: private or
        // unknown). Any other undefined length is corruption that dicom-rs misreads (a 4 GB
        // string from a 1 KB file, fuzz/RESULTS.md finding 5).
        let (len, sequence, may_hold_items) = if is_delimiter || !explicit {
            let len = c.u32()?;
            let vr = StandardDataDictionary.by_tag(tag).map(|e| e.vr());
            let sq = !is_delimiter && matches!(vr, Some(VirtualVr::Exact(VR::SQ)));
            (len, sq, tag.group() % 2 == 1 || vr.is_none())
        } else {
            let vr = c.take(2)?.to_vec();
            if !known_vr(&vr) {
                return Err(format!("element {tag} at byte {start} has no valid VR ({vr:02x?})"));
            }
            if long_length(&vr) {
                c.take(2)?;
                (c.u32()?, &vr == b"SQ", matches!(vr.as_slice(), b"UN" | b"OB" | b"OW"))
            } else {
                (c.u16()? as u32, false, false)
            }
        };
        // Encapsulated (compressed) pixel data: a run of items holding opaque fragments, up to the
        // sequence delimiter. Each fragment must fit in the file; its bytes are not elements.
        if tag == Tag(0x7FE0, 0x0010) && len == UNDEFINED {
            loop {
                let item = Tag(c.u16()?, c.u16()?);
                let flen = c.u32()?;
                if item == Tag(0xFFFE, 0xE0DD) {
                    break;
                }
                if flen as usize > c.remaining() {
                    return Err(format!(
                        "pixel data fragment at byte {} declares {flen} bytes, {} remain in the file",
                        c.pos,
                        c.remaining()
                    ));
                }
                c.take(flen as usize)?;
            }
            continue;
        }
        if len == UNDEFINED && !is_delimiter && !sequence && !may_hold_items {
            return Err(format!("element {tag} at byte {start} has an undefined length but is no sequence"));
        }
        // Items, sequences and other undefined lengths: their content is walked as elements in turn.
        if is_delimiter || sequence || len == UNDEFINED {
            // A sequence (or an element read as one) holds items: its content starts with an item
            // or ends at once. dicom-rs reads anything else there in its own way: a 1 KB file with
            // an unknown tag of undefined length followed by a plain element made it reserve 4 GB
            // (fuzz/RESULTS.md finding 7).
            if !is_delimiter && len != 0 {
                let at = c.pos;
                let next = (c.u16()?, c.u16()?);
                c.pos = at;
                if next.0 != 0xFFFE || !matches!(next.1, 0xE000 | 0xE0DD) {
                    return Err(format!(
                        "element {tag} at byte {start} is read as a sequence but holds no item ({})",
                        Tag(next.0, next.1)
                    ));
                }
            }
            continue;
        }
        if len as usize > c.remaining() {
            return Err(format!(
                "element {tag} at byte {start} declares {len} bytes, {} remain in the file",
                c.remaining()
            ));
        }
        let value = c.take(len as usize)?;
        if tag == Tag(0x0002, 0x0010) {
            transfer_syntax = Some(String::from_utf8_lossy(value).trim_end_matches(['\0', ' ']).to_string());
        }
    }
    Ok(transfer_syntax)
}

/// Checks that no element of the file declares more bytes than the file holds.
pub fn check_declared_lengths(bytes: &[u8]) -> Result<(), String> {
    let start = if bytes.len() >= 132 && &bytes[128..132] == b"DICM" {
        132
    } else if bytes.starts_with(b"DICM") {
        4
    } else {
        return Err("no DICM marker: not a DICOM Part 10 file".into());
    };
    let mut c = Cursor { bytes, pos: start, big_endian: false };
    let ts = walk(&mut c, true, true)?.ok_or("no transfer syntax in the file meta group")?;
    match ts.as_str() {
        DEFLATED => Ok(()), // the data set is compressed; dicom-rs inflates it as a stream
        IMPLICIT_LE => walk(&mut c, false, false).map(|_| ()),
        EXPLICIT_BE => walk(&mut Cursor { big_endian: true, ..c }, true, false).map(|_| ()),
        _ => walk(&mut c, true, false).map(|_| ()),
    }
}

#[cfg(test)]
mod tests {
    use super::check_declared_lengths;

    fn element(tag: (u16, u16), vr: &[u8; 2], value: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend(tag.0.to_le_bytes());
        out.extend(tag.1.to_le_bytes());
        out.extend(vr);
        if matches!(vr, b"OB" | b"SQ" | b"UN" | b"UT") {
            out.extend([0, 0]);
            out.extend((value.len() as u32).to_le_bytes());
        } else {
            out.extend((value.len() as u16).to_le_bytes());
        }
        out.extend(value);
        out
    }

    /// An implicit-VR element header of undefined length, followed by `content`.
    fn undefined_length(tag: (u16, u16), content: &[u8]) -> Vec<u8> {
        let mut e = Vec::new();
        e.extend(tag.0.to_le_bytes());
        e.extend(tag.1.to_le_bytes());
        e.extend(0xFFFF_FFFFu32.to_le_bytes());
        e.extend(content);
        e
    }

    fn file(meta: &[Vec<u8>], body: &[Vec<u8>]) -> Vec<u8> {
        let mut out = vec![0u8; 128];
        out.extend(b"DICM");
        meta.iter().chain(body).for_each(|e| out.extend(e));
        out
    }

    #[test]
    fn honest_lengths_pass_and_inflated_ones_are_refused() {
        let ts = element((0x0002, 0x0010), b"UI", b"1.2.840.10008.1.2.1\0");
        let ok = file(&[ts.clone()], &[element((0x0010, 0x0010), b"PN", b"DOE^JANE")]);
        assert!(check_declared_lengths(&ok).is_ok());
        // The file meta group: Implementation Version Name declaring 4 GB.
        let mut bomb = element((0x0002, 0x0013), b"SH", b"");
        bomb.truncate(6);
        bomb.extend(0xFFF0u16.to_le_bytes());
        let err = check_declared_lengths(&file(&[ts.clone(), bomb], &[])).unwrap_err();
        assert!(err.contains("declares 65520 bytes"), "{err}");
        // The data set: an OB value longer than the file.
        let mut ob = element((0x7FE0, 0x0010), b"OB", &[1, 2, 3, 4]);
        ob[8..12].copy_from_slice(&0xF000_0000u32.to_le_bytes());
        assert!(check_declared_lengths(&file(&[ts], &[ob])).is_err());
        assert!(check_declared_lengths(b"not dicom at all").is_err());
    }

    #[test]
    fn an_element_without_a_valid_vr_is_refused() {
        let ts = element((0x0002, 0x0010), b"UI", b"1.2.840.10008.1.2.1\0");
        // A byte flipped in the VR of Media Storage SOP Instance UID (as the fuzzer found it).
        let bad = element((0x0002, 0x0003), b"\xAAI", b"1.2.3.4\0");
        let err = check_declared_lengths(&file(&[ts.clone(), bad], &[])).unwrap_err();
        assert!(err.contains("no valid VR"), "{err}");
        // In the data set too.
        let bad = element((0x0010, 0x0010), b"pn", b"DOE^JANE");
        assert!(check_declared_lengths(&file(&[ts], &[bad])).unwrap_err().contains("no valid VR"));
        // The fuzzer's input: refused before dicom-rs reserves 1.4 GB for it.
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/fuzz_regressions/dicom_meta_bad_vr/f0.dcm");
        let found = std::fs::read(path).unwrap();
        assert!(check_declared_lengths(&found).unwrap_err().contains("no valid VR"));
    }

    #[test]
    fn an_undefined_length_is_refused_where_no_sequence_can_be() {
        let implicit = element((0x0002, 0x0010), b"UI", b"1.2.840.10008.1.2\0");
        let undefined = |tag| undefined_length(tag, &[0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0]); // then a sequence delimiter
                                                                                            // Largest Image Pixel Value in Plane (US/SS) with an undefined length, as the fuzzer made it.
        let err = check_declared_lengths(&file(&[implicit.clone()], &[undefined((0x0028, 0x0111))])).unwrap_err();
        assert!(err.contains("undefined length but is no sequence"), "{err}");
        // A sequence, and a private element (which may be one), pass.
        assert!(check_declared_lengths(&file(&[implicit.clone()], &[undefined((0x0008, 0x1140))])).is_ok());
        assert!(check_declared_lengths(&file(&[implicit], &[undefined((0x0029, 0x1010))])).is_ok());
        // The fuzzer's input: refused before dicom-rs reserves 4 GB for it.
        let path =
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/fuzz_regressions/dicom_undefined_length_string/f0.dcm");
        let found = std::fs::read(path).unwrap();
        assert!(check_declared_lengths(&found).unwrap_err().contains("undefined length"));
    }

    #[test]
    fn a_sequence_must_hold_items() {
        let implicit = element((0x0002, 0x0010), b"UI", b"1.2.840.10008.1.2\0");
        let undefined_then = undefined_length;
        let item = [0xFE, 0xFF, 0x00, 0xE0, 0, 0, 0, 0, 0xFE, 0xFF, 0xDD, 0xE0, 0, 0, 0, 0];
        let plain = [0x28, 0x00, 0x10, 0x00, 2, 0, 0, 0, 0, 2];
        // An unknown tag of undefined length (read as a sequence) holding an item passes; holding
        // a plain element it is refused.
        assert!(check_declared_lengths(&file(&[implicit.clone()], &[undefined_then((0x0028, 0xFD04), &item)])).is_ok());
        let err = check_declared_lengths(&file(&[implicit.clone()], &[undefined_then((0x0028, 0xFD04), &plain)]))
            .unwrap_err();
        assert!(err.contains("holds no item"), "{err}");
        // A real sequence too.
        assert!(
            check_declared_lengths(&file(&[implicit.clone()], &[undefined_then((0x0008, 0x1140), &plain)])).is_err()
        );
        // The fuzzer's input: refused before dicom-rs reserves 4 GB for it.
        let path =
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/fuzz_regressions/dicom_unknown_tag_without_items/f0.dcm");
        let found = std::fs::read(path).unwrap();
        assert!(check_declared_lengths(&found).unwrap_err().contains("holds no item"));
    }

    #[test]
    fn the_sample_series_passes() {
        let dir = crate::assets::sample_data_dir().join("example_ct_dicom");
        let entries = std::fs::read_dir(&dir).expect("sample DICOM series: run `make setup`");
        for entry in entries {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            check_declared_lengths(&bytes).unwrap();
        }
    }
}
