//! Masks from files, as prompts (issue #21): one label of a NIfTI label map, or one segment of a
//! DICOM SEG, onto a volume's own grid (0/1, x-fastest), e.g. TotalSegmentator's output to refine.
//!
//! A prompt is the user's drawing, so nothing is resampled or guessed: a label map must lie on
//! the volume's grid (same dimensions and affine), and a SEG's frames must reference the volume's
//! own DICOM instances (by SOP Instance UID, else by position). Anything else is refused with a
//! `PROMPT_MASK_*` code that says what differs.

use super::dicom_series::{parse_dicom, read_dicom_file, text, uint};
use super::error::{ReadLimits, VolumeError};
use super::{Source, Volume};
use dicom_core::Tag;
use dicom_dictionary_std::{tags, uids};
use dicom_object::InMemDicomObject;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum MaskFileError {
    #[error(transparent)]
    Volume(#[from] VolumeError),
    #[error("{path}: the mask is not on the volume's grid: {reason}")]
    Grid { path: PathBuf, reason: String },
    #[error("{path}: {what} {label} is absent ({present})")]
    LabelAbsent { path: PathBuf, what: &'static str, label: u32, present: String },
    #[error("{path}: the mask is empty{detail}")]
    Empty { path: PathBuf, detail: String },
    #[error("{path}: not a usable DICOM SEG: {reason}")]
    NotSeg { path: PathBuf, reason: String },
}

impl crate::error::Coded for MaskFileError {
    fn code(&self) -> &'static str {
        match self {
            Self::Volume(e) => e.code(),
            Self::Grid { .. } => "PROMPT_MASK_GRID",
            Self::LabelAbsent { .. } => "PROMPT_MASK_LABEL_ABSENT",
            Self::Empty { .. } => "PROMPT_MASK_EMPTY",
            Self::NotSeg { .. } => "PROMPT_MASK_NOT_SEG",
        }
    }
}

/// The mask `label` of the file at `path` on `volume`'s grid: value `label` of a NIfTI label map,
/// or segment number `label` of a DICOM SEG (a file, or a folder holding one SEG instance, as a
/// DICOMweb download is). Refused when empty.
pub fn read_mask(path: &Path, label: u32, volume: &Volume, limits: &ReadLimits) -> Result<Vec<u8>, MaskFileError> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("").to_ascii_lowercase();
    let mask = if name.ends_with(".nii") || name.ends_with(".nii.gz") {
        nifti_label(path, label, volume, limits)?
    } else {
        seg_segment(&seg_file(path)?, label, volume, limits)?
    };
    if !mask.iter().any(|&v| v != 0) {
        return Err(MaskFileError::Empty { path: path.into(), detail: String::new() });
    }
    Ok(mask)
}

fn nifti_label(path: &Path, label: u32, volume: &Volume, limits: &ReadLimits) -> Result<Vec<u8>, MaskFileError> {
    let labels = super::read_nifti_with_limits(path, limits)?;
    let grid = |reason: String| MaskFileError::Grid { path: path.into(), reason };
    if labels.dims() != volume.dims() {
        return Err(grid(format!("{:?} voxels, the volume {:?}", labels.dims(), volume.dims())));
    }
    // Positions within a hundredth of a voxel: the same grid written by another tool.
    let tolerance = 0.01 * volume.spacing.iter().copied().fold(f64::INFINITY, f64::min);
    let far = (0..3)
        .flat_map(|r| (0..4).map(move |c| (r, c)))
        .find(|&(r, c)| (labels.affine[r][c] - volume.affine[r][c]).abs() > tolerance);
    if let Some((r, c)) = far {
        return Err(grid(format!(
            "affine element ({r}, {c}) is {:.4}, the volume's {:.4} (another space or orientation: resample it onto the CT first)",
            labels.affine[r][c], volume.affine[r][c]
        )));
    }
    let mask: Vec<u8> = labels.data.iter().map(|&v| (v.round() as i64 == label as i64) as u8).collect();
    if !mask.iter().any(|&v| v != 0) {
        let mut present: Vec<i64> = labels.data.iter().filter(|&&v| v != 0.0).map(|&v| v.round() as i64).collect();
        present.sort_unstable();
        present.dedup();
        if present.is_empty() {
            return Err(MaskFileError::Empty { path: path.into(), detail: " (no non-zero voxel)".into() });
        }
        let shown: Vec<String> = present.iter().take(20).map(|v| v.to_string()).collect();
        let more = if present.len() > 20 { format!(" and {} more", present.len() - 20) } else { String::new() };
        return Err(MaskFileError::LabelAbsent {
            path: path.into(),
            what: "label",
            label,
            present: format!("labels present: {}{more}", shown.join(", ")),
        });
    }
    Ok(mask)
}

/// The SEG file: `path` itself, or the one DICOM file in the folder `path`.
fn seg_file(path: &Path) -> Result<PathBuf, MaskFileError> {
    if !path.is_dir() {
        return Ok(path.to_path_buf());
    }
    let io = |e: std::io::Error| VolumeError::Unreadable { path: path.into(), reason: e.to_string() };
    let mut files: Vec<PathBuf> = Vec::new();
    for entry in std::fs::read_dir(path).map_err(io)? {
        let entry = entry.map_err(io)?;
        if entry.file_type().map_err(io)?.is_file() {
            files.push(entry.path());
        }
    }
    match files.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(VolumeError::EmptyFolder { path: path.into() }.into()),
        many => Err(MaskFileError::NotSeg {
            path: path.into(),
            reason: format!("a folder of {} files; a mask prompt is one SEG instance", many.len()),
        }),
    }
}

fn items(obj: &InMemDicomObject, tag: Tag) -> &[InMemDicomObject] {
    obj.element_opt(tag).ok().flatten().and_then(|e| e.items()).unwrap_or(&[])
}

/// Segment `number` of the SEG at `path`, frames placed on the slices they reference.
fn seg_segment(path: &Path, number: u32, volume: &Volume, limits: &ReadLimits) -> Result<Vec<u8>, MaskFileError> {
    let not_seg = |reason: String| MaskFileError::NotSeg { path: path.into(), reason };
    let grid = |reason: String| MaskFileError::Grid { path: path.into(), reason };
    let mut total = 0u64;
    let bytes = read_dicom_file(path, &mut total, limits)?.ok_or_else(|| not_seg("not a DICOM file".into()))?;
    let obj = parse_dicom(&bytes, false).map_err(|reason| VolumeError::Unreadable { path: path.into(), reason })?;
    drop(bytes);
    if text(&obj, tags::SOP_CLASS_UID) != uids::SEGMENTATION_STORAGE {
        return Err(not_seg(format!("SOP class {} is not Segmentation Storage", text(&obj, tags::SOP_CLASS_UID))));
    }
    let Source::Dicom(series) = &volume.source else {
        return Err(grid("a DICOM SEG places its frames on DICOM instances; this volume was not read from DICOM (give a NIfTI label map)".into()));
    };
    let numbers: Vec<u32> =
        items(&obj, tags::SEGMENT_SEQUENCE).iter().filter_map(|s| uint(s, tags::SEGMENT_NUMBER)).collect();
    if !numbers.contains(&number) {
        let present: Vec<String> = numbers.iter().map(|n| n.to_string()).collect();
        return Err(MaskFileError::LabelAbsent {
            path: path.into(),
            what: "segment number",
            label: number,
            present: format!(
                "segments present: {}",
                if present.is_empty() { "none".into() } else { present.join(", ") }
            ),
        });
    }
    let (rows, columns) = volume.grid.plane_shape();
    let slices = volume.num_slices();
    let (seg_rows, seg_columns) =
        (uint(&obj, tags::ROWS).unwrap_or(0) as usize, uint(&obj, tags::COLUMNS).unwrap_or(0) as usize);
    if (seg_rows, seg_columns) != (rows, columns) {
        return Err(grid(format!(
            "frames of {seg_rows} x {seg_columns} pixels, the volume's slices {rows} x {columns}"
        )));
    }
    let bits = uint(&obj, tags::BITS_ALLOCATED).unwrap_or(0);
    if bits != 1 && bits != 8 {
        return Err(not_seg(format!("{bits} bits allocated (a SEG has 1, binary, or 8, fractional)")));
    }
    // A FRACTIONAL segment is inside where it reaches half its maximum.
    let threshold =
        if bits == 8 { uint(&obj, tags::MAXIMUM_FRACTIONAL_VALUE).unwrap_or(255).max(1).div_ceil(2) } else { 1 };
    let frames = uint(&obj, tags::NUMBER_OF_FRAMES).unwrap_or(1) as usize;
    let per_frame = items(&obj, tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE);
    if per_frame.len() != frames {
        return Err(not_seg(format!("{frames} frames but {} per-frame functional groups", per_frame.len())));
    }
    let pixels = obj
        .element(tags::PIXEL_DATA)
        .map_err(|e| not_seg(format!("no pixel data: {e}")))?
        .to_bytes()
        .map_err(|e| not_seg(format!("pixel data that is not native (compressed SEG?): {e}")))?;
    let plane = rows * columns;
    let needed = if bits == 1 { (frames * plane).div_ceil(8) } else { frames * plane };
    if pixels.len() < needed {
        return Err(not_seg(format!("{} bytes of pixel data for {frames} frames of {plane} pixels", pixels.len())));
    }
    let positions_tolerance = 0.01 * volume.spacing[2].max(1e-3);
    // Frames are row-major slices of the instances they reference: planes of the volume's grid.
    let mut planes: std::collections::BTreeMap<usize, Vec<u8>> = std::collections::BTreeMap::new();
    for (f, group) in per_frame.iter().enumerate() {
        let segment = items(group, tags::SEGMENT_IDENTIFICATION_SEQUENCE)
            .first()
            .and_then(|s| uint(s, tags::REFERENCED_SEGMENT_NUMBER));
        if segment != Some(number) {
            continue;
        }
        // The slice: by the instance the frame was derived from, else by its position.
        let referenced = items(group, tags::DERIVATION_IMAGE_SEQUENCE)
            .iter()
            .flat_map(|d| items(d, tags::SOURCE_IMAGE_SEQUENCE))
            .map(|s| text(s, tags::REFERENCED_SOP_INSTANCE_UID))
            .find_map(|uid| series.sop_instance_uids.iter().position(|u| *u == uid));
        let by_position = || {
            let p = items(group, tags::PLANE_POSITION_SEQUENCE)
                .first()
                .and_then(|p| p.element_opt(tags::IMAGE_POSITION_PATIENT).ok().flatten())
                .and_then(|e| e.to_multi_float64().ok())
                .filter(|v| v.len() == 3)?;
            series.image_positions.iter().position(|q| (0..3).all(|i| (q[i] - p[i]).abs() <= positions_tolerance))
        };
        let Some(k) = referenced.or_else(by_position) else {
            return Err(grid(format!(
                "frame {} references no instance of series {} (another series, or another study's frames)",
                f + 1,
                series.series_instance_uid
            )));
        };
        if k >= slices {
            continue;
        }
        let start = f * plane;
        let out = planes.entry(k).or_insert_with(|| vec![0u8; plane]);
        for (i, v) in out.iter_mut().enumerate() {
            let inside = if bits == 1 {
                let bit = start + i;
                pixels[bit / 8] >> (bit % 8) & 1 == 1
            } else {
                pixels[start + i] as u32 >= threshold
            };
            *v |= inside as u8;
        }
    }
    if planes.is_empty() {
        return Err(MaskFileError::Empty { path: path.into(), detail: format!(" (segment {number} has no frame)") });
    }
    let mut mask = vec![0u8; volume.grid.len()];
    for (k, plane) in &planes {
        volume.grid.insert(&mut mask, *k, plane);
    }
    Ok(mask)
}
