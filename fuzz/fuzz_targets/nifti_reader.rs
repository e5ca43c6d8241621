//! Fuzzes the NIfTI reader: any bytes, as .nii or .nii.gz, must give a volume or a typed error,
//! never a panic, a hang or an allocation beyond the voxel limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use radsam::volume::{read_nifti_with_limits, ReadLimits};

fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir().join(format!("radsam-fuzz-nifti-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // The first byte picks the file name, so both the plain and the gzip paths are explored.
    let name = if data.first().is_some_and(|b| b & 1 == 1) { "v.nii.gz" } else { "v.nii" };
    let path = dir.join(name);
    std::fs::write(&path, data.get(1..).unwrap_or_default()).unwrap();
    if let Ok(v) = read_nifti_with_limits(&path, &ReadLimits { max_voxels: 1 << 22, ..ReadLimits::default() }) {
        assert_eq!(v.data.len(), v.grid.len());
        assert!(v.spacing.iter().all(|s| s.is_finite() && *s > 0.0));
    }
});
