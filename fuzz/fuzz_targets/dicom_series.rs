//! Fuzzes DICOM series reading: the input is split into up to four files of one folder; any
//! content must give a volume or a typed error, never a crash.
#![no_main]

use libfuzzer_sys::fuzz_target;
use radsam::volume::{read_dicom_series, ReadLimits};

/// Splits the input at the marker "RADSAMFILE" (seed corpora are built that way), at most 4 parts.
fn split_files(data: &[u8]) -> Vec<&[u8]> {
    let marker = b"RADSAMFILE";
    let mut parts = Vec::new();
    let (mut start, mut i) = (0, 0);
    while i + marker.len() <= data.len() && parts.len() < 3 {
        if &data[i..i + marker.len()] == marker {
            parts.push(&data[start..i]);
            i += marker.len();
            start = i;
        } else {
            i += 1;
        }
    }
    parts.push(&data[start..]);
    parts
}

fuzz_target!(
    init: {
        // libfuzzer-sys aborts in its panic hook, before any unwinding; the reader deliberately
        // catches panics of dicom-rs decoders (see dicom_series.rs), so let panics unwind. A panic
        // that escapes the reader still reaches libFuzzer's own catch and is reported as a crash.
        std::panic::set_hook(Box::new(|info| eprintln!("{info}")));
    },
    |data: &[u8]| {
        let dir = std::env::temp_dir().join(format!("radsam-fuzz-dicom-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (n, part) in split_files(data).into_iter().enumerate() {
            std::fs::write(dir.join(format!("f{n}.dcm")), part).unwrap();
        }
        if let Ok(v) = read_dicom_series(&dir, None, &ReadLimits { max_voxels: 1 << 22, ..ReadLimits::default() }) {
            assert_eq!(v.data.len(), v.grid.len());
        }
    }
);
