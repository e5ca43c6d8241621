//! DICOM CT series from a folder, with dicom-rs.
//!
//! Files are grouped by SeriesInstanceUID (a folder with several series is refused with the list,
//! unless one is chosen), checked to be single-frame CT with one orientation and size, sorted by
//! ImagePositionPatient along the slice normal, checked for missing or uneven slices, decoded with
//! the pure-Rust decoders of dicom-rs (native, RLE, JPEG baseline/lossless, JPEG 2000, JPEG XL),
//! and rescaled to HU (stored * RescaleSlope + RescaleIntercept). Voxel (i, j, k) is (column, row,
//! slice); the affine maps it to RAS (DICOM's LPS with x and y negated).
//!
//! Only regular files are read, each at most once per pass and never past the per-file and
//! per-series byte limits; symbolic links to folders are refused. The geometry (orientation,
//! positions, spacing, affine, slice shape) is checked from the headers before any pixel is
//! decoded; voxels that are not finite after rescaling (a RescaleSlope of NaN) refuse the series.

use super::dicom_guard::check_declared_lengths;
use super::error::{ReadLimits, VolumeError};
use super::files::{check_affine, check_plane, file_len, open_regular};
use super::{superior_inferior_axis, Grid, Source, Volume};
use dicom_dictionary_std::tags;
use dicom_object::file::ReadPreamble;
use dicom_object::{DefaultDicomObject, InMemDicomObject, OpenFileOptions};
use dicom_pixeldata::{ConvertOptions, ModalityLutOption, PixelDecoder};
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// The largest DICOM file read (one single-frame slice: 4096 x 4096 x 32 bits is 64 MiB).
pub const MAX_DICOM_FILE_BYTES: u64 = 128 << 20;
/// The largest slice, in pixels (4096 x 4096): compressed pixel data can decode to far more than
/// the file holds, and a slice is decoded whole.
pub const MAX_DICOM_PLANE_PIXELS: u64 = 1 << 24;

/// What a DICOM-derived volume remembers of its series: identifiers for derived objects (SEG),
/// the patient and study, and the geometry of each slice in volume order.
#[derive(Debug, Clone, Default)]
pub struct DicomSeries {
    pub study_instance_uid: String,
    pub series_instance_uid: String,
    pub frame_of_reference_uid: String,
    pub sop_class_uid: String,
    /// SOP Instance UID of each slice, in slice (k) order.
    pub sop_instance_uids: Vec<String>,
    pub patient_name: String,
    pub patient_id: String,
    pub patient_birth_date: String,
    pub patient_sex: String,
    pub study_date: String,
    pub study_time: String,
    pub study_id: String,
    pub accession_number: String,
    pub referring_physician_name: String,
    pub series_description: String,
    pub series_number: String,
    /// Row direction cosines then column direction cosines (LPS).
    pub image_orientation: [f64; 6],
    /// ImagePositionPatient of each slice, in slice order (LPS, mm).
    pub image_positions: Vec<[f64; 3]>,
    /// (between rows, between columns) in mm.
    pub pixel_spacing: [f64; 2],
    pub slice_thickness: Option<f64>,
    pub transfer_syntax: String,
}

struct Header {
    file: PathBuf,
    series_uid: String,
    series_description: String,
    modality: String,
    rows: u32,
    columns: u32,
    frames: u32,
    orientation: Option<Vec<f64>>,
    position: Option<Vec<f64>>,
    pixel_spacing: Option<Vec<f64>>,
    thickness: Option<f64>,
}

/// An element's text, trimmed of padding; empty when absent (also for sequence items).
pub(super) fn text(obj: &InMemDicomObject, tag: dicom_core::Tag) -> String {
    obj.element_opt(tag)
        .ok()
        .flatten()
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_end_matches(['\0', ' ']).trim().to_string())
        .unwrap_or_default()
}

fn floats(obj: &DefaultDicomObject, tag: dicom_core::Tag) -> Option<Vec<f64>> {
    obj.element_opt(tag).ok().flatten().and_then(|e| e.to_multi_float64().ok())
}

pub(super) fn uint(obj: &InMemDicomObject, tag: dicom_core::Tag) -> Option<u32> {
    obj.element_opt(tag).ok().flatten().and_then(|e| e.to_int::<u32>().ok())
}

fn is_dicom(bytes: &[u8]) -> bool {
    (bytes.len() >= 132 && &bytes[128..132] == b"DICM") || bytes.starts_with(b"DICM")
}

/// The bytes of a DICOM file: only a regular file (a FIFO or /dev/zero behind a symlink is
/// refused), at most [`MAX_DICOM_FILE_BYTES`]. None when it lacks the DICM marker (not DICOM:
/// skipped after reading 132 bytes, however large it is). `total` counts the bytes read for the
/// series, against `limits.max_bytes`.
pub(super) fn read_dicom_file(
    file: &Path,
    total: &mut u64,
    limits: &ReadLimits,
) -> Result<Option<Vec<u8>>, VolumeError> {
    let unreadable = |e: std::io::Error| VolumeError::Unreadable { path: file.to_path_buf(), reason: e.to_string() };
    let mut f = open_regular(file)?;
    let len = file_len(&f, file)?;
    let mut head = Vec::with_capacity(132);
    (&mut f).take(132).read_to_end(&mut head).map_err(unreadable)?;
    if !is_dicom(&head) {
        return Ok(None);
    }
    if len > MAX_DICOM_FILE_BYTES {
        return Err(VolumeError::TooManyBytes {
            path: file.to_path_buf(),
            what: "DICOM file (a fixed limit per file)",
            bytes: len,
            limit: MAX_DICOM_FILE_BYTES,
        });
    }
    *total += len;
    if *total > limits.max_bytes {
        return Err(VolumeError::TooManyBytes {
            path: file.to_path_buf(),
            what: "DICOM files read so far (limit: RADSAM_MAX_VOLUME_BYTES)",
            bytes: *total,
            limit: limits.max_bytes,
        });
    }
    f.seek(SeekFrom::Start(0)).map_err(unreadable)?;
    let mut bytes = Vec::with_capacity(len as usize);
    f.take(MAX_DICOM_FILE_BYTES).read_to_end(&mut bytes).map_err(unreadable)?;
    Ok(Some(bytes))
}

/// Parses a DICOM file held in memory (up to the pixel data when `header_only`). The bytes were
/// read once from the checked file, so the file is never opened again by path.
pub(super) fn parse_dicom(bytes: &[u8], header_only: bool) -> Result<DefaultDicomObject, String> {
    // Declared lengths beyond the file size never reach dicom-rs, which would allocate them
    // (see dicom_guard.rs).
    check_declared_lengths(bytes)?;
    let body = if bytes.len() >= 132 && &bytes[128..132] == b"DICM" { &bytes[128..] } else { bytes };
    let options = OpenFileOptions::new().read_preamble(ReadPreamble::Never);
    let options = if header_only { options.read_until(tags::PIXEL_DATA) } else { options };
    options.from_reader(body).map_err(|e| e.to_string())
}

/// The header of one file. Files without the DICM marker are not DICOM and are skipped (None);
/// a file that claims to be DICOM but cannot be parsed is an error, never silently dropped, since
/// a dropped slice at either end of a series would go unnoticed.
fn read_header(file: &Path, total: &mut u64, limits: &ReadLimits) -> Result<Option<Header>, VolumeError> {
    let Some(bytes) = read_dicom_file(file, total, limits)? else { return Ok(None) };
    let corrupt = |reason: String| VolumeError::Unreadable {
        path: file.to_path_buf(),
        reason: format!("corrupt DICOM file: {reason}"),
    };
    let obj = parse_dicom(&bytes, true).map_err(corrupt)?;
    let rows = uint(&obj, tags::ROWS).ok_or_else(|| corrupt("no Rows".into()))?;
    let columns = uint(&obj, tags::COLUMNS).ok_or_else(|| corrupt("no Columns".into()))?;
    // What the pixel decoders size their output by (rows x columns x samples x bits): a CT slice
    // has one sample of 8, 16 or 32 bits per pixel. Anything else is refused before a decoder
    // runs: a 1 KB RLE file declaring 56065 samples per pixel made dicom-rs allocate 6.8 GB
    // (fuzz/RESULTS.md, finding 6).
    if let Some(samples) = uint(&obj, tags::SAMPLES_PER_PIXEL).filter(|&s| s != 1) {
        return Err(corrupt(format!("{samples} samples per pixel (a CT slice has 1)")));
    }
    if let Some(bits) = uint(&obj, tags::BITS_ALLOCATED).filter(|b| ![8, 16, 32].contains(b)) {
        return Err(corrupt(format!("BitsAllocated {bits} (8, 16 or 32 expected)")));
    }
    Ok(Some(Header {
        file: file.to_path_buf(),
        series_uid: text(&obj, tags::SERIES_INSTANCE_UID),
        series_description: text(&obj, tags::SERIES_DESCRIPTION),
        modality: text(&obj, tags::MODALITY),
        rows,
        columns,
        frames: uint(&obj, tags::NUMBER_OF_FRAMES).unwrap_or(1),
        orientation: floats(&obj, tags::IMAGE_ORIENTATION_PATIENT),
        position: floats(&obj, tags::IMAGE_POSITION_PATIENT),
        pixel_spacing: floats(&obj, tags::PIXEL_SPACING),
        thickness: floats(&obj, tags::SLICE_THICKNESS).and_then(|v| v.first().copied()),
    }))
}

/// The files under `dir`, in name order, through real sub-folders. A symbolic link to a folder is
/// refused (it could lead anywhere, or loop); links to files are listed and, like every file,
/// read only if they resolve to a regular file.
fn files_under(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), VolumeError> {
    let unreadable =
        |path: &Path, e: std::io::Error| VolumeError::Unreadable { path: path.to_path_buf(), reason: e.to_string() };
    let mut entries: Vec<_> =
        std::fs::read_dir(dir).and_then(|d| d.collect::<Result<Vec<_>, _>>()).map_err(|e| unreadable(dir, e))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        let kind = e.file_type().map_err(|err| unreadable(&p, err))?; // the entry itself, not followed
        if kind.is_dir() {
            files_under(&p, out)?;
        } else if kind.is_symlink() && p.is_dir() {
            return Err(VolumeError::Unreadable {
                path: p,
                reason: "a symbolic link to a folder: only real sub-folders of a series folder are read".into(),
            });
        } else if p.file_name().is_some_and(|n| n != "DICOMDIR") {
            out.push(p);
        }
    }
    Ok(())
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}

fn dot(a: [f64; 3], b: &[f64]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// Reads one CT series from `dir`. With several series in the folder, `series_uid` chooses one.
pub fn read_dicom_series(dir: &Path, series_uid: Option<&str>, limits: &ReadLimits) -> Result<Volume, VolumeError> {
    let path = dir.to_path_buf();
    if !dir.exists() {
        return Err(VolumeError::NotFound { path });
    }
    let mut files = Vec::new();
    files_under(dir, &mut files)?;
    let mut headers = Vec::new();
    let mut total_bytes = 0u64;
    for f in &files {
        headers.extend(read_header(f, &mut total_bytes, limits)?);
    }
    if headers.is_empty() {
        return Err(VolumeError::EmptyFolder { path });
    }

    let mut by_series: BTreeMap<String, Vec<Header>> = BTreeMap::new();
    for h in headers {
        by_series.entry(h.series_uid.clone()).or_default().push(h);
    }
    let describe = |uid: &String, hs: &Vec<Header>| {
        format!(
            "{uid} ({}, {}, {} files)",
            hs[0].modality,
            if hs[0].series_description.is_empty() { "no description" } else { &hs[0].series_description },
            hs.len()
        )
    };
    let listing: Vec<String> = by_series.iter().map(|(u, h)| describe(u, h)).collect();
    let mut series = match series_uid {
        Some(uid) => by_series.remove(uid).ok_or_else(|| VolumeError::SeriesNotFound {
            path: path.clone(),
            uid: uid.to_string(),
            present: listing.clone(),
        })?,
        None if by_series.len() == 1 => by_series.into_values().next().unwrap(),
        None => return Err(VolumeError::MultipleSeries { path, series: listing }),
    };

    let first = &series[0];
    if first.modality != "CT" {
        return Err(VolumeError::NotCt {
            path,
            modality: if first.modality.is_empty() { "missing".into() } else { first.modality.clone() },
        });
    }
    let inconsistent = |reason: String| VolumeError::InconsistentSeries { path: path.clone(), reason };
    if let Some(h) = series.iter().find(|h| h.frames > 1) {
        return Err(inconsistent(format!(
            "{} is a multi-frame image ({} frames); only single-frame CT series are supported",
            h.file.display(),
            h.frames
        )));
    }
    let (rows, cols) = (first.rows, first.columns);
    let orientation = first
        .orientation
        .clone()
        .filter(|o| o.len() == 6)
        .ok_or_else(|| inconsistent(format!("{}: no ImageOrientationPatient", first.file.display())))?;
    let spacing_rc = first
        .pixel_spacing
        .clone()
        .filter(|s| s.len() == 2)
        .ok_or_else(|| inconsistent(format!("{}: no PixelSpacing", first.file.display())))?;
    for h in &series {
        if h.rows != rows || h.columns != cols {
            return Err(inconsistent(format!(
                "{} is {}x{}, {} is {rows}x{cols}",
                h.file.display(),
                h.columns,
                h.rows,
                first.file.display()
            )));
        }
        let same = |a: &Option<Vec<f64>>, b: &[f64]| {
            a.as_ref().is_some_and(|a| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-4))
        };
        if !same(&h.orientation, &orientation) {
            return Err(inconsistent(format!("{} has another ImageOrientationPatient", h.file.display())));
        }
        if !same(&h.pixel_spacing, &spacing_rc) {
            return Err(inconsistent(format!("{} has another PixelSpacing", h.file.display())));
        }
        if h.position.as_ref().is_none_or(|p| p.len() != 3) {
            return Err(inconsistent(format!("{}: no ImagePositionPatient", h.file.display())));
        }
    }
    let bad_geometry = |reason: String| VolumeError::BadGeometry { path: path.clone(), reason };
    let row_dir = [orientation[0], orientation[1], orientation[2]];
    let col_dir = [orientation[3], orientation[4], orientation[5]];
    let normal = cross(row_dir, col_dir);
    // Orientation and positions decide the slice order and the affine: NaN would sort at random,
    // zero directions would make every slice share one position.
    if orientation.iter().any(|v| !v.is_finite()) || dot(normal, &normal) < 1e-6 {
        return Err(bad_geometry(format!("ImageOrientationPatient {orientation:?} is not two independent directions")));
    }
    if let Some(h) = series.iter().find(|h| h.position.as_ref().unwrap().iter().any(|v| !v.is_finite())) {
        return Err(bad_geometry(format!(
            "{}: ImagePositionPatient {:?} is not finite",
            h.file.display(),
            h.position.as_ref().unwrap()
        )));
    }
    series.sort_by(|a, b| {
        dot(normal, a.position.as_ref().unwrap()).total_cmp(&dot(normal, b.position.as_ref().unwrap()))
    });
    let depth: Vec<f64> = series.iter().map(|h| dot(normal, h.position.as_ref().unwrap())).collect();

    let n = series.len();
    let voxels = rows as u64 * cols as u64 * n as u64;
    if voxels > limits.max_voxels {
        return Err(VolumeError::TooLarge { path, voxels, limit: limits.max_voxels });
    }
    if rows as u64 * cols as u64 > MAX_DICOM_PLANE_PIXELS {
        return Err(VolumeError::TooLargeSlice {
            path,
            rows: rows as u64,
            cols: cols as u64,
            limit: MAX_DICOM_PLANE_PIXELS,
        });
    }
    let slice_spacing = check_gaps(&depth, &path)?;
    // Spacing and the affine (below) are known from the headers: checked before any decoding.
    let slice_spacing = slice_spacing.or(series[0].thickness).filter(|s| s.is_finite() && *s > 0.0);
    let Some(dz) = slice_spacing else {
        return Err(VolumeError::BadSpacing { path, spacing: vec![spacing_rc[1], spacing_rc[0], f64::NAN] });
    };
    let spacing = [spacing_rc[1], spacing_rc[0], dz];
    if spacing.iter().any(|s| !s.is_finite() || *s <= 0.0) {
        return Err(VolumeError::BadSpacing { path, spacing: spacing.to_vec() });
    }
    // LPS affine: columns are the directions of i (along a row), j (down a column), k (the normal).
    let p0 = series[0].position.clone().unwrap();
    let k_dir = if n > 1 {
        let pl = series[n - 1].position.clone().unwrap();
        [(pl[0] - p0[0]) / (n - 1) as f64, (pl[1] - p0[1]) / (n - 1) as f64, (pl[2] - p0[2]) / (n - 1) as f64]
    } else {
        [normal[0] * dz, normal[1] * dz, normal[2] * dz]
    };
    let mut affine = [[0.0; 4]; 4];
    for a in 0..3 {
        let lps = [row_dir[a] * spacing[0], col_dir[a] * spacing[1], k_dir[a], p0[a]];
        let sign = if a < 2 { -1.0 } else { 1.0 };
        for (c, v) in lps.iter().enumerate() {
            affine[a][c] = sign * v;
        }
    }
    affine[3][3] = 1.0;
    check_affine(&affine, &path)?;
    let grid = Grid::new([cols as usize, rows as usize, n], superior_inferior_axis(&affine));
    check_plane(&grid, &path)?;

    // The first slice here (a series whose slices are all corrupt fails on it, once), then the
    // others on all cores (JPEG 2000 is most of a compressed series' time), each thread writing
    // its slices straight into the volume (no second copy of it). A thread stops at its first
    // error, the others before their next slice; of the errors met, the first in slice order is
    // reported.
    let plane = (rows * cols) as usize;
    let mut data = vec![0f32; voxels as usize];
    let (first_out, rest_out) = data.split_at_mut(plane);
    let first = decode_slice(&series[0], true, (rows, cols), limits, first_out)?;
    let rest = &series[1..];
    let threads = std::thread::available_parallelism().map_or(1, |t| t.get()).min(MAX_DECODE_THREADS);
    let per_thread = rest.len().div_ceil(threads).max(1);
    let failed = std::sync::atomic::AtomicBool::new(false);
    let decoded: Vec<Result<DecodedSlice, VolumeError>> = std::thread::scope(|scope| {
        let workers: Vec<_> = rest
            .chunks(per_thread)
            .zip(rest_out.chunks_mut(per_thread * plane))
            .map(|(headers, out)| {
                let failed = &failed;
                scope.spawn(move || {
                    let mut done = Vec::with_capacity(headers.len());
                    for (h, out) in headers.iter().zip(out.chunks_mut(plane)) {
                        if failed.load(std::sync::atomic::Ordering::Relaxed) {
                            break;
                        }
                        let slice = decode_slice(h, false, (rows, cols), limits, out);
                        let stop = slice.is_err();
                        done.push(slice);
                        if stop {
                            failed.store(true, std::sync::atomic::Ordering::Relaxed);
                            break;
                        }
                    }
                    done
                })
            })
            .collect();
        workers.into_iter().flat_map(|w| w.join().expect("a decoder thread panicked")).collect()
    });
    let decoded = std::iter::once(Ok(first)).chain(decoded).collect::<Result<Vec<_>, _>>()?;
    assert_eq!(decoded.len(), n, "every slice decoded when none failed");
    let mut info = DicomSeries::default();
    for (h, slice) in series.iter().zip(decoded) {
        if let Some(obj) = slice.first {
            let ts = obj.meta().transfer_syntax().trim_end_matches('\0').to_string();
            info = DicomSeries {
                study_instance_uid: text(&obj, tags::STUDY_INSTANCE_UID),
                series_instance_uid: h.series_uid.clone(),
                frame_of_reference_uid: text(&obj, tags::FRAME_OF_REFERENCE_UID),
                sop_class_uid: Some(text(&obj, tags::SOP_CLASS_UID))
                    .filter(|u| !u.is_empty())
                    .unwrap_or_else(|| obj.meta().media_storage_sop_class_uid().trim_end_matches('\0').to_string()),
                patient_name: text(&obj, tags::PATIENT_NAME),
                patient_id: text(&obj, tags::PATIENT_ID),
                patient_birth_date: text(&obj, tags::PATIENT_BIRTH_DATE),
                patient_sex: text(&obj, tags::PATIENT_SEX),
                study_date: text(&obj, tags::STUDY_DATE),
                study_time: text(&obj, tags::STUDY_TIME),
                study_id: text(&obj, tags::STUDY_ID),
                accession_number: text(&obj, tags::ACCESSION_NUMBER),
                referring_physician_name: text(&obj, tags::REFERRING_PHYSICIAN_NAME),
                series_description: h.series_description.clone(),
                series_number: text(&obj, tags::SERIES_NUMBER),
                image_orientation: orientation.clone().try_into().unwrap(),
                pixel_spacing: [spacing_rc[0], spacing_rc[1]],
                slice_thickness: floats(&obj, tags::SLICE_THICKNESS).and_then(|v| v.first().copied()),
                transfer_syntax: ts,
                ..Default::default()
            };
        }
        info.sop_instance_uids.push(slice.sop_instance_uid);
        let p = h.position.as_ref().unwrap();
        info.image_positions.push([p[0], p[1], p[2]]);
    }

    let non_finite = data.iter().filter(|v| !v.is_finite()).count() as u64;
    if non_finite > 0 {
        return Err(VolumeError::NonFinite { path, count: non_finite, total: voxels });
    }
    Ok(Volume { data, grid, spacing, affine, source: Source::Dicom(Box::new(info)) })
}

/// At most this many threads decode a series' slices.
const MAX_DECODE_THREADS: usize = 8;

/// What decoding a slice returns besides its voxels: its SOP instance UID, and (for the first slice
/// of the series) its parsed file, whose header describes the series.
struct DecodedSlice {
    sop_instance_uid: String,
    first: Option<DefaultDicomObject>,
}

/// Reads and decodes one slice of a series whose headers were checked (`rows` x `cols` each), its
/// Hounsfield units into `out`. (The header pass counted the series' bytes against the limit;
/// each file is still read within the per-file limit.)
fn decode_slice(
    h: &Header,
    first: bool,
    (rows, cols): (u32, u32),
    limits: &ReadLimits,
    out: &mut [f32],
) -> Result<DecodedSlice, VolumeError> {
    let mut read_bytes = 0u64;
    let bytes = read_dicom_file(&h.file, &mut read_bytes, limits)?
        .ok_or_else(|| VolumeError::Unreadable { path: h.file.clone(), reason: "no longer a DICOM file".into() })?;
    let obj = parse_dicom(&bytes, false).map_err(|reason| VolumeError::Unreadable { path: h.file.clone(), reason })?;
    drop(bytes);
    let ts = obj.meta().transfer_syntax().trim_end_matches('\0').to_string();
    let unsupported = || {
        use dicom_encoding::transfer_syntax::TransferSyntaxIndex;
        let name = dicom_transfer_syntax_registry::TransferSyntaxRegistry
            .get(&ts)
            .map(|t| t.name().to_string())
            .unwrap_or_else(|| "unknown".into());
        VolumeError::UnsupportedTransferSyntax { path: h.file.clone(), uid: ts.clone(), name }
    };
    // dicom-rs 0.8 decoders can panic on corrupt compressed data (an index out of bounds in
    // its RLE decoder, found by fuzzing): a corrupt file must be an error, not a crash.
    let decode = || -> Result<Vec<f64>, VolumeError> {
        let decoded = obj.decode_pixel_data().map_err(|e| match e.to_string() {
            m if m.contains("ransfer syntax") || m.contains("nsupported") => unsupported(),
            m => VolumeError::Unreadable { path: h.file.clone(), reason: m },
        })?;
        decoded
            .to_vec_with_options::<f64>(&ConvertOptions::new().with_modality_lut(ModalityLutOption::None))
            .map_err(|e| VolumeError::Unreadable { path: h.file.clone(), reason: e.to_string() })
    };
    let stored = std::panic::catch_unwind(std::panic::AssertUnwindSafe(decode)).unwrap_or_else(|_| {
        Err(VolumeError::Unreadable {
            path: h.file.clone(),
            reason: format!("the {ts} pixel decoder failed on corrupt pixel data"),
        })
    })?;
    if stored.len() != (rows * cols) as usize {
        return Err(VolumeError::Dimensions {
            path: h.file.clone(),
            reason: format!("{} pixels decoded, Rows x Columns = {}", stored.len(), rows * cols),
        });
    }
    let slope = floats(&obj, tags::RESCALE_SLOPE).and_then(|v| v.first().copied()).unwrap_or(1.0);
    let intercept = floats(&obj, tags::RESCALE_INTERCEPT).and_then(|v| v.first().copied()).unwrap_or(0.0);
    out.iter_mut().zip(&stored).for_each(|(o, &v)| *o = (v * slope + intercept) as f32);
    // Anonymisers sometimes empty SOPInstanceUID but keep the file meta's copy.
    let sop_instance_uid = Some(text(&obj, tags::SOP_INSTANCE_UID))
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| obj.meta().media_storage_sop_instance_uid().trim_end_matches('\0').to_string());
    Ok(DecodedSlice { sop_instance_uid, first: first.then_some(obj) })
}

/// Spacing between slices from their sorted positions along the normal; refuses duplicates, gaps
/// (missing slices) and uneven spacing (more than 10% off the median). None for a single slice.
fn check_gaps(depth: &[f64], path: &Path) -> Result<Option<f64>, VolumeError> {
    if depth.len() < 2 {
        return Ok(None);
    }
    let gaps: Vec<f64> = depth.windows(2).map(|w| w[1] - w[0]).collect();
    let mut sorted = gaps.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let bad = |reason: String| VolumeError::SliceGaps { path: path.to_path_buf(), reason };
    if median < 1e-3 {
        return Err(bad("several slices share one position".into()));
    }
    for (i, &g) in gaps.iter().enumerate() {
        if g < 1e-3 {
            return Err(bad(format!("two slices at the same position {:.2} mm", depth[i])));
        }
        if (g - median).abs() > 0.1 * median {
            let ratio = g / median;
            return Err(if (ratio - ratio.round()).abs() < 0.1 && ratio.round() >= 2.0 {
                bad(format!(
                    "{} slice(s) missing between positions {:.2} and {:.2} mm (spacing {:.3} mm)",
                    ratio.round() as i64 - 1,
                    depth[i],
                    depth[i + 1],
                    median
                ))
            } else {
                bad(format!(
                    "spacing {:.3} mm between positions {:.2} and {:.2} mm, {:.3} mm elsewhere",
                    g,
                    depth[i],
                    depth[i + 1],
                    median
                ))
            });
        }
    }
    Ok(Some(depth.last().unwrap() - depth[0]).map(|span| span / (depth.len() - 1) as f64))
}

#[cfg(test)]
mod tests {
    use super::check_gaps;
    use crate::error::Coded;
    use std::path::Path;

    #[test]
    fn gaps_duplicates_and_uneven_spacing_are_refused() {
        let p = Path::new("series");
        assert_eq!(check_gaps(&[0.0, 2.5, 5.0, 7.5], p).unwrap(), Some(2.5));
        assert_eq!(check_gaps(&[3.0], p).unwrap(), None);
        let e = check_gaps(&[0.0, 2.5, 7.5, 10.0, 12.5], p).unwrap_err();
        assert!(e.to_string().contains("1 slice(s) missing"), "{e}");
        assert_eq!(e.code(), "VOLUME_SLICE_GAPS");
        assert!(check_gaps(&[0.0, 2.5, 2.5, 5.0], p).unwrap_err().to_string().contains("same position"));
        assert!(check_gaps(&[0.0, 2.5, 5.0, 6.0, 8.5], p).unwrap_err().to_string().contains("spacing"));
    }
}
