//! Fuzzes DICOM series reading: the input is split into up to four files of one folder; any
//! content must give a volume or a typed error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use radsam::volume::{read_dicom_series, ReadLimits};

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("radsam-fuzz-dicom-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // Files are separated by the marker "RADSAMFILE" (seed corpora are built that way).
    let mut start = 0;
    let mut files = 0;
    let marker = b"RADSAMFILE";
    let mut i = 0;
    while i + marker.len() <= data.len() && files < 3 {
        if &data[i..i + marker.len()] == marker {
            std::fs::write(dir.join(format!("f{files}.dcm")), &data[start..i]).unwrap();
            files += 1;
            i += marker.len();
            start = i;
        } else {
            i += 1;
        }
    }
    std::fs::write(dir.join(format!("f{files}.dcm")), &data[start..]).unwrap();
    if let Ok(v) = read_dicom_series(&dir, None, &ReadLimits { max_voxels: 1 << 22 }) {
        assert_eq!(v.data.len(), v.grid.len());
    }
});
