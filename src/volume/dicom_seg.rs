//! DICOM Segmentation (binary SEG) output for volumes read from a DICOM series, with dicom-rs.
//!
//! One multi-frame SEG instance holds every segment. Each frame is one segment on one source
//! slice and references that slice's SOP instance, so viewers and PACS overlay it on the source
//! series. For a DICOM volume, slice k of the grid (x-fastest, i = column, j = row) is exactly
//! source instance k (rows x columns), so frames are plain chunks of the mask.
//!
//! Only slices where a segment is non-empty get a frame. A segment whose mask is empty everywhere
//! still gets one all-zero frame (on the first slice), so that every segment in SegmentSequence is
//! referenced by some frame and readers that enumerate frames still see it.

use super::error::VolumeError;
use super::{DicomSeries, Source, Volume};
use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::mem::InMemElement;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use std::path::{Path, PathBuf};

/// One segment: a label and a mask on the source volume's grid (x-fastest, non-zero = inside).
pub struct SegmentMask<'a> {
    pub label: String,
    pub mask: &'a [u8],
}

/// Descriptive attributes of the SEG series.
#[derive(Debug, Clone)]
pub struct SegMeta {
    pub algorithm_name: String,
    pub algorithm_version: String,
    pub series_description: String,
    pub series_number: i32,
    pub content_creator: String,
    /// With a seed, the SEG's UIDs (instance, series, dimension organisation) are derived from it,
    /// so writing the same job's SEG again gives the same instance: a PACS that receives it twice
    /// (a redelivered job) keeps one. None: fresh random UIDs.
    pub uid_seed: Option<String>,
}

/// The UIDs a SEG was written with: where it lands in a PACS.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SegUids {
    pub study_instance_uid: String,
    pub series_instance_uid: String,
    pub sop_instance_uid: String,
}

impl Default for SegMeta {
    fn default() -> Self {
        Self {
            algorithm_name: "RadSAM".into(),
            algorithm_version: env!("CARGO_PKG_VERSION").into(),
            series_description: "RadSAM segmentation - research use only, not for diagnosis".into(),
            series_number: 300,
            content_creator: "RadSAM".into(),
            uid_seed: None,
        }
    }
}

/// Writes `segments` (masks on `source`'s grid) as one binary DICOM SEG instance at `path`,
/// referencing the DICOM series `source` was read from. The file appears at `path` complete or
/// not at all. Returns the SEG's UIDs.
pub fn write_dicom_seg(
    path: &Path,
    source: &Volume,
    segments: &[SegmentMask],
    meta: &SegMeta,
) -> Result<SegUids, VolumeError> {
    let unwritable = |reason: String| VolumeError::Unwritable { path: path.to_path_buf(), reason };
    let Source::Dicom(series) = &source.source else {
        return Err(unwritable("a DICOM SEG references the DICOM series it segments, and this volume was not read from DICOM (write a NIfTI mask instead)".into()));
    };
    let [_, _, slices] = source.grid.dims;
    if series.sop_instance_uids.len() != slices || series.image_positions.len() != slices {
        return Err(unwritable(format!(
            "the volume has {slices} slices but its DICOM series {} instances",
            series.sop_instance_uids.len()
        )));
    }
    if segments.is_empty() || segments.len() > u16::MAX as usize {
        return Err(unwritable(format!("{} segments given; a SEG holds 1 to {}", segments.len(), u16::MAX)));
    }
    for s in segments {
        if s.mask.len() != source.grid.len() {
            return Err(unwritable(format!(
                "mask `{}` has {} voxels, the volume {}",
                s.label,
                s.mask.len(),
                source.grid.len()
            )));
        }
        check_lo("segment label", &s.label).map_err(unwritable)?;
    }
    check_lo("algorithm name", &meta.algorithm_name).map_err(unwritable)?;
    check_lo("algorithm version", &meta.algorithm_version).map_err(unwritable)?;
    check_lo("series description", &meta.series_description).map_err(unwritable)?;

    let (dataset, uids) = build_dataset(source, series, segments, meta);
    let file = dataset
        .with_meta(FileMetaTableBuilder::new().transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN))
        .map_err(|e| unwritable(e.to_string()))?;
    let name = path.file_name().and_then(|n| n.to_str()).ok_or_else(|| unwritable("no file name".into()))?;
    let tmp: PathBuf = path.with_file_name(format!(".{name}.{}.partial", std::process::id()));
    let result = file.write_to_file(&tmp).map_err(|e| unwritable(e.to_string()));
    let result = result.and_then(|_| std::fs::rename(&tmp, path).map_err(|e| unwritable(e.to_string())));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map(|_| uids)
}

/// LO values (labels, names) must be present, at most 64 characters, and free of the value
/// separator and control characters; a reader would otherwise split or reject them.
fn check_lo(what: &str, value: &str) -> Result<(), String> {
    if value.trim().is_empty() || value.chars().count() > 64 || value.chars().any(|c| c == '\\' || c.is_control()) {
        return Err(format!("{what} {value:?} must be 1 to 64 characters without backslashes or control characters"));
    }
    Ok(())
}

/// Every frame as (segment number, slice index), grouped by segment, slices ascending.
fn frames(segments: &[SegmentMask], plane: usize) -> Vec<(u16, usize)> {
    let mut frames = Vec::new();
    for (s, segment) in segments.iter().enumerate() {
        let number = s as u16 + 1;
        let before = frames.len();
        frames.extend(
            segment.mask.chunks(plane).enumerate().filter(|(_, f)| f.iter().any(|&v| v != 0)).map(|(k, _)| (number, k)),
        );
        if frames.len() == before {
            frames.push((number, 0));
        }
    }
    frames
}

fn build_dataset(
    source: &Volume,
    series: &DicomSeries,
    segments: &[SegmentMask],
    meta: &SegMeta,
) -> (InMemDicomObject, SegUids) {
    let [columns, rows, _] = source.grid.dims;
    let plane = rows * columns;
    let frames = frames(segments, plane);
    let pixel_data =
        pack_bits(frames.iter().map(|&(number, k)| &segments[number as usize - 1].mask[k * plane..(k + 1) * plane]));
    let (date, time) = utc_now();
    // A source without a StudyInstanceUID (some anonymisers drop it) cannot be joined; the SEG
    // then opens a study of its own, still tied to the source by frame of reference and SOP UIDs.
    let uid = |role: &str| match &meta.uid_seed {
        Some(seed) => derived_uid(seed, role),
        None => new_uid(),
    };
    let study_uid = if series.study_instance_uid.is_empty() { uid("study") } else { series.study_instance_uid.clone() };
    let sop_instance_uid = uid("instance");
    let series_uid = uid("series");

    let segment_items =
        segments.iter().enumerate().map(|(s, seg)| segment_item(s as u16 + 1, &seg.label, meta)).collect();
    let frame_items = frames.iter().map(|&(number, k)| frame_item(series, number, k)).collect();
    let referenced_instances = series
        .sop_instance_uids
        .iter()
        .map(|uid| {
            obj([
                el(tags::REFERENCED_SOP_CLASS_UID, VR::UI, series.sop_class_uid.as_str()),
                el(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, uid.as_str()),
            ])
        })
        .collect();
    let dimension_organization = uid("dimension organization");
    let dimension = |pointer: Tag, group: Tag, label: &str| {
        obj([
            el(tags::DIMENSION_ORGANIZATION_UID, VR::UI, dimension_organization.as_str()),
            el(tags::DIMENSION_INDEX_POINTER, VR::AT, pointer),
            el(tags::FUNCTIONAL_GROUP_POINTER, VR::AT, group),
            el(tags::DIMENSION_DESCRIPTION_LABEL, VR::LO, label),
        ])
    };
    let shared = obj([
        seq(
            tags::PLANE_ORIENTATION_SEQUENCE,
            vec![obj([decimals(tags::IMAGE_ORIENTATION_PATIENT, &series.image_orientation)])],
        ),
        seq(
            tags::PIXEL_MEASURES_SEQUENCE,
            vec![obj([
                decimals(tags::PIXEL_SPACING, &series.pixel_spacing),
                decimals(tags::SLICE_THICKNESS, &[series.slice_thickness.unwrap_or(source.spacing[2])]),
                decimals(tags::SPACING_BETWEEN_SLICES, &[source.spacing[2]]),
            ])],
        ),
    ]);

    let dataset = obj([
        // SOP Common; UTF-8 so that names and labels in any script survive.
        el(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192"),
        el(tags::SOP_CLASS_UID, VR::UI, uids::SEGMENTATION_STORAGE),
        el(tags::SOP_INSTANCE_UID, VR::UI, sop_instance_uid.as_str()),
        // Patient and General Study, from the source.
        el(tags::PATIENT_NAME, VR::PN, series.patient_name.as_str()),
        el(tags::PATIENT_ID, VR::LO, series.patient_id.as_str()),
        el(tags::PATIENT_BIRTH_DATE, VR::DA, series.patient_birth_date.as_str()),
        el(tags::PATIENT_SEX, VR::CS, series.patient_sex.as_str()),
        el(tags::STUDY_INSTANCE_UID, VR::UI, study_uid.as_str()),
        el(tags::STUDY_DATE, VR::DA, series.study_date.as_str()),
        el(tags::STUDY_TIME, VR::TM, series.study_time.as_str()),
        el(tags::STUDY_ID, VR::SH, series.study_id.as_str()),
        el(tags::ACCESSION_NUMBER, VR::SH, series.accession_number.as_str()),
        el(tags::REFERRING_PHYSICIAN_NAME, VR::PN, series.referring_physician_name.as_str()),
        // Segmentation Series and Frame of Reference.
        el(tags::MODALITY, VR::CS, "SEG"),
        el(tags::SERIES_INSTANCE_UID, VR::UI, series_uid.as_str()),
        el(tags::SERIES_NUMBER, VR::IS, meta.series_number.to_string()),
        el(tags::SERIES_DESCRIPTION, VR::LO, meta.series_description.as_str()),
        el(tags::FRAME_OF_REFERENCE_UID, VR::UI, series.frame_of_reference_uid.as_str()),
        el(tags::POSITION_REFERENCE_INDICATOR, VR::LO, ""),
        // General and Enhanced General Equipment: the "device" is this software.
        el(tags::MANUFACTURER, VR::LO, "RadSAM"),
        el(tags::MANUFACTURER_MODEL_NAME, VR::LO, "RadSAM"),
        el(tags::DEVICE_SERIAL_NUMBER, VR::LO, "0"),
        el(tags::SOFTWARE_VERSIONS, VR::LO, env!("CARGO_PKG_VERSION")),
        // Segmentation Image and Multi-frame Functional Groups.
        strs(tags::IMAGE_TYPE, VR::CS, ["DERIVED", "PRIMARY"]),
        el(tags::INSTANCE_NUMBER, VR::IS, "1"),
        el(tags::CONTENT_DATE, VR::DA, date),
        el(tags::CONTENT_TIME, VR::TM, time),
        el(tags::TIMEZONE_OFFSET_FROM_UTC, VR::SH, "+0000"),
        el(tags::CONTENT_LABEL, VR::CS, "RADSAM"),
        el(tags::CONTENT_DESCRIPTION, VR::LO, meta.series_description.as_str()),
        el(tags::CONTENT_CREATOR_NAME, VR::PN, meta.content_creator.as_str()),
        el(tags::SEGMENTATION_TYPE, VR::CS, "BINARY"),
        el(tags::LOSSY_IMAGE_COMPRESSION, VR::CS, "00"),
        seq(tags::SEGMENT_SEQUENCE, segment_items),
        el(tags::NUMBER_OF_FRAMES, VR::IS, frames.len().to_string()),
        seq(tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE, vec![shared]),
        seq(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE, frame_items),
        // Multi-frame Dimension: frames are indexed by segment, then by plane position.
        seq(
            tags::DIMENSION_ORGANIZATION_SEQUENCE,
            vec![obj([el(tags::DIMENSION_ORGANIZATION_UID, VR::UI, dimension_organization.as_str())])],
        ),
        seq(
            tags::DIMENSION_INDEX_SEQUENCE,
            vec![
                dimension(tags::REFERENCED_SEGMENT_NUMBER, tags::SEGMENT_IDENTIFICATION_SEQUENCE, "Segment Number"),
                dimension(tags::IMAGE_POSITION_PATIENT, tags::PLANE_POSITION_SEQUENCE, "Image Position Patient"),
            ],
        ),
        // Common Instance Reference: every instance of the source series.
        seq(
            tags::REFERENCED_SERIES_SEQUENCE,
            vec![obj([
                el(tags::SERIES_INSTANCE_UID, VR::UI, series.series_instance_uid.as_str()),
                seq(tags::REFERENCED_INSTANCE_SEQUENCE, referenced_instances),
            ])],
        ),
        // Image Pixel: 1 bit per pixel.
        el(tags::SAMPLES_PER_PIXEL, VR::US, 1u16),
        el(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2"),
        el(tags::ROWS, VR::US, rows as u16),
        el(tags::COLUMNS, VR::US, columns as u16),
        el(tags::BITS_ALLOCATED, VR::US, 1u16),
        el(tags::BITS_STORED, VR::US, 1u16),
        el(tags::HIGH_BIT, VR::US, 0u16),
        el(tags::PIXEL_REPRESENTATION, VR::US, 0u16),
        el(tags::PIXEL_DATA, VR::OB, pixel_data),
    ]);
    let uids = SegUids { study_instance_uid: study_uid, series_instance_uid: series_uid, sop_instance_uid };
    (dataset, uids)
}

fn segment_item(number: u16, label: &str, meta: &SegMeta) -> InMemDicomObject {
    let (type_value, type_meaning) = property_type(label);
    let algorithm = obj([
        seq(tags::ALGORITHM_FAMILY_CODE_SEQUENCE, vec![code("123110", "DCM", "Artificial Intelligence")]),
        el(tags::ALGORITHM_NAME, VR::LO, meta.algorithm_name.as_str()),
        el(tags::ALGORITHM_VERSION, VR::LO, meta.algorithm_version.as_str()),
    ]);
    obj([
        el(tags::SEGMENT_NUMBER, VR::US, number),
        el(tags::SEGMENT_LABEL, VR::LO, label),
        el(tags::SEGMENT_ALGORITHM_TYPE, VR::CS, "AUTOMATIC"),
        el(tags::SEGMENT_ALGORITHM_NAME, VR::LO, meta.algorithm_name.as_str()),
        seq(tags::SEGMENTATION_ALGORITHM_IDENTIFICATION_SEQUENCE, vec![algorithm]),
        seq(tags::SEGMENTED_PROPERTY_CATEGORY_CODE_SEQUENCE, vec![code("123037004", "SCT", "Anatomical Structure")]),
        seq(tags::SEGMENTED_PROPERTY_TYPE_CODE_SEQUENCE, vec![code(type_value, "SCT", type_meaning)]),
    ])
}

/// SNOMED CT code of a segment's structure, from its label; "Tissue" when not a known organ.
fn property_type(label: &str) -> (&'static str, &'static str) {
    match label.trim().to_lowercase().replace([' ', '-'], "_").as_str() {
        "liver" => ("10200004", "Liver"),
        "spleen" => ("78961009", "Spleen"),
        "kidney" | "kidney_left" | "kidney_right" => ("64033007", "Kidney"),
        "pancreas" => ("15776009", "Pancreas"),
        "aorta" => ("15825003", "Aorta"),
        "stomach" => ("69695003", "Stomach"),
        "gallbladder" => ("28231008", "Gallbladder"),
        "lung" => ("39607008", "Lung"),
        "heart" => ("80891009", "Heart"),
        _ => ("85756007", "Tissue"),
    }
}

/// Per-frame functional groups of the frame showing segment `number` on source slice `k`.
fn frame_item(series: &DicomSeries, number: u16, k: usize) -> InMemDicomObject {
    let source_image = obj([
        el(tags::REFERENCED_SOP_CLASS_UID, VR::UI, series.sop_class_uid.as_str()),
        el(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, series.sop_instance_uids[k].as_str()),
        seq(
            tags::PURPOSE_OF_REFERENCE_CODE_SEQUENCE,
            vec![code("121322", "DCM", "Source image for image processing operation")],
        ),
        // Frame pixels coincide with source pixels; readers such as highdicom require this flag
        // before they index the SEG by source instance.
        el(tags::SPATIAL_LOCATIONS_PRESERVED, VR::CS, "YES"),
    ]);
    let derivation = obj([
        seq(tags::DERIVATION_CODE_SEQUENCE, vec![code("113076", "DCM", "Segmentation")]),
        seq(tags::SOURCE_IMAGE_SEQUENCE, vec![source_image]),
    ]);
    obj([
        seq(tags::DERIVATION_IMAGE_SEQUENCE, vec![derivation]),
        seq(
            tags::FRAME_CONTENT_SEQUENCE,
            vec![obj([el(tags::DIMENSION_INDEX_VALUES, VR::UL, [number as u32, k as u32 + 1])])],
        ),
        seq(
            tags::PLANE_POSITION_SEQUENCE,
            vec![obj([decimals(tags::IMAGE_POSITION_PATIENT, &series.image_positions[k])])],
        ),
        seq(tags::SEGMENT_IDENTIFICATION_SEQUENCE, vec![obj([el(tags::REFERENCED_SEGMENT_NUMBER, VR::US, number)])]),
    ])
}

fn obj<const N: usize>(elements: [InMemElement; N]) -> InMemDicomObject {
    InMemDicomObject::from_element_iter(elements)
}

fn el(tag: Tag, vr: VR, value: impl Into<PrimitiveValue>) -> InMemElement {
    DataElement::new(tag, vr, value.into())
}

fn strs<S: Into<String>>(tag: Tag, vr: VR, values: impl IntoIterator<Item = S>) -> InMemElement {
    el(tag, vr, PrimitiveValue::Strs(values.into_iter().map(Into::into).collect()))
}

fn decimals(tag: Tag, values: &[f64]) -> InMemElement {
    strs(tag, VR::DS, values.iter().map(|&v| ds(v)))
}

fn seq(tag: Tag, items: Vec<InMemDicomObject>) -> InMemElement {
    DataElement::new(tag, VR::SQ, DataSetSequence::from(items))
}

fn code(value: &str, scheme: &str, meaning: &str) -> InMemDicomObject {
    obj([
        el(tags::CODE_VALUE, VR::SH, value),
        el(tags::CODING_SCHEME_DESIGNATOR, VR::SH, scheme),
        el(tags::CODE_MEANING, VR::LO, meaning),
    ])
}

/// A decimal string (DS) of at most 16 characters, as DICOM requires: the shortest exact form
/// when it fits, otherwise rounded to as many decimals as fit.
fn ds(v: f64) -> String {
    let exact = v.to_string();
    if exact.len() <= 16 {
        return exact;
    }
    (0..=15)
        .rev()
        .map(|decimals| {
            let s = format!("{v:.decimals$}");
            if s.contains('.') {
                s.trim_end_matches('0').trim_end_matches('.').to_string()
            } else {
                s
            }
        })
        .find(|s| s.len() <= 16)
        .unwrap_or_else(|| format!("{v:.9e}"))
}

/// Frames at 1 bit per pixel, back to back with no padding between frames: bit i of the stream
/// is pixel i, least significant bit first within a byte. The total is padded to an even length.
fn pack_bits<'a>(frames: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut start = 0;
    for frame in frames {
        out.resize((start + frame.len()).div_ceil(8), 0);
        for (i, _) in frame.iter().enumerate().filter(|(_, &v)| v != 0) {
            let bit = start + i;
            out[bit / 8] |= 1 << (bit % 8);
        }
        start += frame.len();
    }
    if out.len() % 2 == 1 {
        out.push(0);
    }
    out
}

/// A UID "2.25.<decimal of 128 bits of SHA-256(seed, role)>": the same seed and role, the same UID.
fn derived_uid(seed: &str, role: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest =
        Sha256::new().chain_update(seed.as_bytes()).chain_update([0u8]).chain_update(role.as_bytes()).finalize();
    let bits = u128::from_be_bytes(digest[..16].try_into().expect("16 bytes"));
    format!("2.25.{bits}")
}

/// A new UID "2.25.<decimal of a random 128-bit number>" (ISO/IEC 9834-8 UUID-derived form).
/// Randomness comes from std's RandomState keys (seeded from the OS), mixed with the time,
/// process id and a counter so that UIDs made in quick succession differ.
fn new_uid() -> String {
    use std::hash::{BuildHasher, Hasher, RandomState};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let half = || {
        let mut h = RandomState::new().build_hasher();
        h.write_u128(nanos);
        h.write_u32(std::process::id());
        h.write_u64(count);
        h.finish() as u128
    };
    format!("2.25.{}", (half() << 64) | half())
}

/// The current UTC date (YYYYMMDD) and time (HHMMSS).
fn utc_now() -> (String, String) {
    let t = crate::clock::utc_now();
    (format!("{:04}{:02}{:02}", t.year, t.month, t.day), format!("{:02}{:02}{:02}", t.hour, t.minute, t.second))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_pack_back_to_back_lsb_first() {
        // Two 3x3 frames (9 pixels each, not a multiple of 8): 18 bits in 3 bytes, padded to 4.
        let a = [1, 0, 0, 0, 0, 0, 0, 0, 1];
        let b = [0, 1, 0, 0, 0, 0, 0, 0, 255];
        let packed = pack_bits([&a[..], &b[..]]);
        // Bits 0 and 8 (frame a), bits 10 and 17 (frame b, starting at bit 9).
        assert_eq!(packed, vec![0b0000_0001, 0b0000_0101, 0b0000_0010, 0]);
        assert_eq!(pack_bits([&[1u8; 16][..]]), vec![0xFF, 0xFF]);
        assert_eq!(pack_bits([&[0u8, 0, 1][..]]), vec![0b100, 0]);
    }

    #[test]
    fn empty_segments_keep_one_frame() {
        let full = [0, 0, 1, 0, 0, 0, 1, 1];
        let empty = [0; 8];
        let segments =
            [SegmentMask { label: "a".into(), mask: &full }, SegmentMask { label: "b".into(), mask: &empty }];
        assert_eq!(frames(&segments, 2), vec![(1, 1), (1, 3), (2, 0)]);
    }

    #[test]
    fn uids_are_2_25_decimal_and_unique() {
        let a = new_uid();
        let b = new_uid();
        assert_ne!(a, b);
        for uid in [a, b] {
            assert!(uid.starts_with("2.25."), "{uid}");
            assert!(uid.len() <= 64, "{uid}");
            assert!(uid.chars().all(|c| c.is_ascii_digit() || c == '.'), "{uid}");
            let number = &uid[5..];
            assert!(number == "0" || !number.starts_with('0'), "{uid}: leading zero");
            number.parse::<u128>().unwrap();
        }
    }

    #[test]
    fn decimal_strings_fit_16_characters() {
        assert_eq!(ds(-249.51171875), "-249.51171875");
        assert_eq!(ds(3.0), "3");
        let long = 0.1 + 0.7;
        assert!(long.to_string().len() > 16);
        let s = ds(long);
        assert!(s.len() <= 16 && (s.parse::<f64>().unwrap() - long).abs() < 1e-12, "{s}");
        assert!(ds(-123456.78901234567).len() <= 16);
    }
}
