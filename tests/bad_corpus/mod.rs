//! The bad-input corpus's generators, shared by tests/bad_inputs.rs (through the CLI) and
//! workers/tests/bad_volumes.rs (through the queue, against a real worker): kinds of hostile or
//! broken volumes and DICOM folders, made at test time (small files, sparse files, FIFOs, links).
#![allow(dead_code)]

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use std::io::Write;
use std::path::{Path, PathBuf};

// ---------------------------------------------------------------------------------------------
// NIfTI files, byte by byte (offsets of the NIfTI-1 header).

#[derive(Clone)]
pub struct Nii {
    pub dims: [u16; 3],
    pub datatype: i16,
    pub bitpix: i16,
    pub pixdim: [f32; 3],
    pub slope: f32,
    pub inter: f32,
    /// (qform_code, quatern b, c, d)
    pub qform: Option<(i16, [f32; 3])>,
    /// sform rows x, y, z
    pub sform: Option<[[f32; 4]; 3]>,
    /// The data bytes after the header (default: int16 zeros with a bright square per slice).
    pub data: Option<Vec<u8>>,
}

impl Nii {
    pub fn int16(dims: [u16; 3]) -> Self {
        Self {
            dims,
            datatype: 4,
            bitpix: 16,
            pixdim: [1.0, 1.0, 2.0],
            slope: 1.0,
            inter: 0.0,
            qform: None,
            sform: None,
            data: None,
        }
    }

    pub fn float32(dims: [u16; 3], values: impl Fn(usize) -> f32) -> Self {
        let n = dims.iter().map(|&d| d as usize).product::<usize>();
        let data = (0..n).flat_map(|i| values(i).to_le_bytes()).collect();
        Self { datatype: 16, bitpix: 32, data: Some(data), ..Self::int16(dims) }
    }

    pub fn voxels(&self) -> usize {
        self.dims.iter().map(|&d| d as usize).product()
    }

    pub fn header(&self) -> Vec<u8> {
        let mut h = vec![0u8; 352];
        let i16_at = |h: &mut Vec<u8>, at: usize, v: i16| h[at..at + 2].copy_from_slice(&v.to_le_bytes());
        let f32_at = |h: &mut Vec<u8>, at: usize, v: f32| h[at..at + 4].copy_from_slice(&v.to_le_bytes());
        h[0..4].copy_from_slice(&348i32.to_le_bytes());
        i16_at(&mut h, 40, 3);
        for (d, &v) in self.dims.iter().enumerate() {
            i16_at(&mut h, 42 + 2 * d, v as i16);
        }
        for d in 4..8 {
            i16_at(&mut h, 40 + 2 * d, 1);
        }
        i16_at(&mut h, 70, self.datatype);
        i16_at(&mut h, 72, self.bitpix);
        f32_at(&mut h, 76, 1.0);
        for (d, &v) in self.pixdim.iter().enumerate() {
            f32_at(&mut h, 80 + 4 * d, v);
        }
        f32_at(&mut h, 108, 352.0);
        f32_at(&mut h, 112, self.slope);
        f32_at(&mut h, 116, self.inter);
        if let Some((code, q)) = self.qform {
            i16_at(&mut h, 252, code);
            for (i, &v) in q.iter().enumerate() {
                f32_at(&mut h, 256 + 4 * i, v);
            }
        }
        if let Some(rows) = self.sform {
            i16_at(&mut h, 254, 1);
            for (r, row) in rows.iter().enumerate() {
                for (c, &v) in row.iter().enumerate() {
                    f32_at(&mut h, 280 + 16 * r + 4 * c, v);
                }
            }
        }
        h[344..348].copy_from_slice(b"n+1\0");
        h
    }

    pub fn data_bytes(&self) -> Vec<u8> {
        self.data.clone().unwrap_or_else(|| {
            let [nx, ny, _] = self.dims.map(|d| d as usize);
            (0..self.voxels())
                .flat_map(|i| {
                    let (x, y) = (i % nx, (i / nx) % ny);
                    let inside = (nx / 4..3 * nx / 4).contains(&x) && (ny / 4..3 * ny / 4).contains(&y);
                    (if inside { 60i16 } else { -800 }).to_le_bytes()
                })
                .collect()
        })
    }

    pub fn write(&self, path: &Path) -> PathBuf {
        let mut bytes = self.header();
        bytes.extend(self.data_bytes());
        if path.extension().is_some_and(|e| e == "gz") {
            bytes = gzip(&bytes);
        }
        std::fs::write(path, bytes).unwrap();
        path.to_path_buf()
    }
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// A gzip bomb: a NIfTI header for `dims` of `datatype` and the data as `mib` gzip members of
/// 1 MiB of `fill` each (gzip readers join members), about 1 KB per MiB on disk.
pub fn gzip_bomb(path: &Path, dims: [u16; 3], datatype: i16, bitpix: i16, fill: &[u8], mib: usize) -> PathBuf {
    let mut file = std::fs::File::create(path).unwrap();
    file.write_all(&gzip(&Nii { datatype, bitpix, ..Nii::int16(dims) }.header())).unwrap();
    let block: Vec<u8> = fill.iter().copied().cycle().take(1 << 20).collect();
    let member = gzip(&block);
    for _ in 0..mib {
        file.write_all(&member).unwrap();
    }
    path.to_path_buf()
}

pub fn mkfifo(path: &Path) -> PathBuf {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo {}", path.display());
    path.to_path_buf()
}

// ---------------------------------------------------------------------------------------------
// DICOM CT series, element by element.

#[derive(Clone)]
pub struct Series {
    pub rows: u16,
    pub cols: u16,
    pub slices: usize,
    pub modality: &'static str,
    pub orientation: String,
    /// ImagePositionPatient of slice k.
    pub position: fn(usize) -> String,
    pub slope: String,
}

impl Series {
    pub fn ct() -> Self {
        Self {
            rows: 32,
            cols: 32,
            slices: 4,
            modality: "CT",
            orientation: "1\\0\\0\\0\\1\\0".into(),
            position: |k| format!("0\\0\\{}", k as f64 * 2.5),
            slope: "1".into(),
        }
    }

    pub fn write(&self, dir: &Path) -> PathBuf {
        std::fs::create_dir_all(dir).unwrap();
        let put = |o: &mut InMemDicomObject, tag, vr, v: PrimitiveValue| o.put(DataElement::new(tag, vr, v));
        for k in 0..self.slices {
            let mut o = InMemDicomObject::new_empty();
            let uid = format!("1.2.826.0.1.3680043.9.7777.{}.{k}", std::process::id());
            put(&mut o, tags::SOP_CLASS_UID, VR::UI, "1.2.840.10008.5.1.4.1.1.2".into());
            put(&mut o, tags::SOP_INSTANCE_UID, VR::UI, uid.as_str().into());
            put(&mut o, tags::STUDY_INSTANCE_UID, VR::UI, "1.2.826.0.1.3680043.9.7777.1".into());
            put(&mut o, tags::SERIES_INSTANCE_UID, VR::UI, "1.2.826.0.1.3680043.9.7777.2".into());
            put(&mut o, tags::FRAME_OF_REFERENCE_UID, VR::UI, "1.2.826.0.1.3680043.9.7777.3".into());
            put(&mut o, tags::MODALITY, VR::CS, self.modality.into());
            put(&mut o, tags::ROWS, VR::US, PrimitiveValue::from(self.rows));
            put(&mut o, tags::COLUMNS, VR::US, PrimitiveValue::from(self.cols));
            put(&mut o, tags::SAMPLES_PER_PIXEL, VR::US, PrimitiveValue::from(1u16));
            put(&mut o, tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2".into());
            put(&mut o, tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(16u16));
            put(&mut o, tags::BITS_STORED, VR::US, PrimitiveValue::from(16u16));
            put(&mut o, tags::HIGH_BIT, VR::US, PrimitiveValue::from(15u16));
            put(&mut o, tags::PIXEL_REPRESENTATION, VR::US, PrimitiveValue::from(1u16));
            put(&mut o, tags::IMAGE_ORIENTATION_PATIENT, VR::DS, self.orientation.as_str().into());
            put(&mut o, tags::IMAGE_POSITION_PATIENT, VR::DS, (self.position)(k).as_str().into());
            put(&mut o, tags::PIXEL_SPACING, VR::DS, "1\\1".into());
            put(&mut o, tags::SLICE_THICKNESS, VR::DS, "2.5".into());
            put(&mut o, tags::RESCALE_SLOPE, VR::DS, self.slope.as_str().into());
            put(&mut o, tags::RESCALE_INTERCEPT, VR::DS, "-1024".into());
            // Small slices get real pixels (a bright square); a huge declared size gets 4 bytes
            // (the reader must refuse it from the header, before decoding).
            let n = self.rows as usize * self.cols as usize;
            let pixels: Vec<u8> = if n <= 1 << 16 {
                (0..n)
                    .flat_map(|i| {
                        (if (8..24).contains(&(i % self.cols as usize)) && (8..24).contains(&(i / self.cols as usize)) {
                            1084i16
                        } else {
                            224
                        })
                        .to_le_bytes()
                    })
                    .collect()
            } else {
                vec![0; 4]
            };
            put(&mut o, tags::PIXEL_DATA, VR::OW, PrimitiveValue::from(pixels));
            let file = o.with_meta(FileMetaTableBuilder::new().transfer_syntax("1.2.840.10008.1.2.1")).unwrap();
            file.write_to_file(dir.join(format!("{k:03}.dcm"))).unwrap();
        }
        dir.to_path_buf()
    }
}

pub struct Case {
    pub name: &'static str,
    pub volume: PathBuf,
    pub code: &'static str,
    /// Text the message must hold (the file named, a count).
    pub says: &'static str,
    pub extra: Vec<&'static str>,
    pub env: Vec<(&'static str, &'static str)>,
}

pub fn case(name: &'static str, volume: PathBuf, code: &'static str, says: &'static str) -> Case {
    Case { name, volume, code, says, extra: vec![], env: vec![] }
}

/// The corpus. Every file is small on disk (bombs and sparse files included).
pub fn corpus(dir: &Path) -> Vec<Case> {
    let nii = |name: &str| dir.join(name);
    let mut cases = Vec::new();
    let mut add = |c: Case| cases.push(c);

    // -- Geometry: slices the model cannot take (issue #18, finding 1), affines that are not one.
    // Each with a box that fits its slice, so that without the check the run reaches the resize.
    let with_box = |c: Case, b: &'static str| Case { extra: vec!["--box", b], ..c };
    add(with_box(
        case(
            "one voxel wide (1x2000x3)",
            Nii::int16([1, 2000, 3]).write(&nii("thin.nii")),
            "VOLUME_TOO_SMALL",
            "2000 x 1",
        ),
        "0,100,1,1500",
    ));
    add(with_box(
        case(
            "four voxels wide (64x4x3)",
            Nii::int16([64, 4, 3]).write(&nii("narrow.nii.gz")),
            "VOLUME_TOO_SMALL",
            "narrow.nii.gz",
        ),
        "2,0,60,3",
    ));
    add(with_box(
        case("sliver 8x1000", Nii::int16([8, 1000, 2]).write(&nii("sliver.nii")), "VOLUME_BAD_GEOMETRY", "64 times"),
        "1,100,7,900",
    ));
    let sform = |rows| Nii { sform: Some(rows), ..Nii::int16([32, 32, 4]) };
    add(case("zero sform", sform([[0.0; 4]; 3]).write(&nii("zero_sform.nii")), "VOLUME_BAD_GEOMETRY", "singular"));
    add(case(
        "NaN sform",
        sform([[f32::NAN, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 2.0, 0.0]]).write(&nii("nan_sform.nii")),
        "VOLUME_BAD_GEOMETRY",
        "not finite",
    ));
    add(case(
        "parallel sform axes",
        sform([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 2.0, 0.0]]).write(&nii("flat_sform.nii")),
        "VOLUME_BAD_GEOMETRY",
        "singular",
    ));
    add(case(
        "NaN quaternion",
        Nii { qform: Some((1, [f32::NAN, 0.0, 0.0])), ..Nii::int16([32, 32, 4]) }.write(&nii("nan_qform.nii")),
        "VOLUME_BAD_GEOMETRY",
        "not finite",
    ));

    // -- Values that are not numbers after rescaling (finding 7).
    add(case(
        "NaN scl_slope",
        Nii { slope: f32::NAN, ..Nii::int16([32, 32, 4]) }.write(&nii("nan_slope.nii.gz")),
        "VOLUME_NON_FINITE",
        "4096 of 4096",
    ));
    add(case(
        "infinite scl_inter",
        Nii { inter: f32::INFINITY, ..Nii::int16([32, 32, 4]) }.write(&nii("inf_inter.nii")),
        "VOLUME_NON_FINITE",
        "4096 of 4096",
    ));
    add(case(
        "five NaN voxels",
        Nii::float32([32, 32, 4], |i| if i % 1000 == 7 { f32::NAN } else { 0.0 }).write(&nii("nan_voxels.nii.gz")),
        "VOLUME_NON_FINITE",
        "5 of 4096",
    ));
    add(case(
        "all +Inf",
        Nii::float32([32, 32, 4], |_| f32::INFINITY).write(&nii("inf.nii")),
        "VOLUME_NON_FINITE",
        "4096 of 4096",
    ));
    let huge: Vec<u8> = (0..32 * 32 * 4).flat_map(|_| 1e300f64.to_le_bytes()).collect();
    add(case(
        "float64 beyond f32",
        Nii { datatype: 64, bitpix: 64, data: Some(huge), ..Nii::int16([32, 32, 4]) }.write(&nii("f64_huge.nii")),
        "VOLUME_NON_FINITE",
        "4096 of 4096",
    ));

    // -- Memory (finding 4): bombs refused from the header, before inflating.
    add(case(
        "gzip bomb 1024x1024x512 int16",
        gzip_bomb(&nii("bomb.nii.gz"), [1024, 1024, 512], 4, 16, &[0], 1024),
        "VOLUME_TOO_LARGE",
        "voxels exceed",
    ));
    add(Case {
        extra: vec!["--max-voxels", "1073741824"],
        env: vec![("RADSAM_MAX_VOLUME_BYTES", "67108864")],
        ..case(
            "gzip bomb under a raised voxel limit, byte limit 64 MiB",
            gzip_bomb(&nii("bomb_bytes.nii.gz"), [1024, 1024, 512], 4, 16, &[0], 1024),
            "VOLUME_TOO_LARGE",
            "bytes of voxel data",
        )
    });
    // At the voxel limit exactly (2^28 float32 NaN, 1 GiB inflated from 1 MB): accepted by the
    // header checks, so fully inflated, then refused: the worst case for memory.
    add(case(
        "NaN bomb at the voxel limit",
        gzip_bomb(&nii("nan_bomb.nii.gz"), [512, 512, 1024], 16, 32, &f32::NAN.to_le_bytes(), 1024),
        "VOLUME_NON_FINITE",
        "268435456 of 268435456",
    ));
    add(case(
        "30000^3 header",
        Nii { data: Some(vec![0; 64]), ..Nii::int16([30000, 30000, 30000]) }.write(&nii("absurd.nii")),
        "VOLUME_TOO_LARGE",
        "voxels exceed",
    ));

    // -- Files that are not files (findings 4 and 5).
    add(case("FIFO as the volume", mkfifo(&nii("pipe.nii.gz")), "VOLUME_UNREADABLE", "pipe.nii.gz"));
    std::os::unix::fs::symlink("/dev/zero", nii("zero.nii")).unwrap();
    add(case("link to /dev/zero as the volume", nii("zero.nii"), "VOLUME_UNREADABLE", "zero.nii"));

    // -- Broken files the reader already refused (kept so they stay refused through the CLI).
    let good = Nii::int16([32, 32, 4]);
    let gz = {
        let mut b = good.header();
        b.extend(good.data_bytes());
        gzip(&b)
    };
    std::fs::write(nii("cut.nii.gz"), &gz[..gz.len() / 2]).unwrap();
    add(case("gzip cut in half", nii("cut.nii.gz"), "VOLUME_TRUNCATED", "cut.nii.gz"));
    add(case(
        "data shorter than the header says",
        Nii { data: Some(vec![0; 100]), ..good.clone() }.write(&nii("short.nii")),
        "VOLUME_DIMENSIONS",
        "short.nii",
    ));
    add(case(
        "zero spacing",
        Nii { pixdim: [0.0, 1.0, 1.0], ..good.clone() }.write(&nii("zero_spacing.nii")),
        "VOLUME_BAD_SPACING",
        "spacing",
    ));
    add(case(
        "complex data type",
        Nii { datatype: 32, bitpix: 64, ..good.clone() }.write(&nii("complex.nii")),
        "VOLUME_UNREADABLE",
        "not a scalar",
    ));
    std::fs::write(nii("text.nii"), vec![b'x'; 400]).unwrap();
    add(case("text file", nii("text.nii"), "VOLUME_UNREADABLE", "text.nii"));
    add(case("absent file", nii("absent.nii.gz"), "VOLUME_NOT_FOUND", "absent.nii.gz"));

    // -- DICOM folders.
    let series = |name: &str, s: Series| s.write(&dir.join(name));
    let with = |name: &str, extra: &dyn Fn(&Path)| {
        let d = Series::ct().write(&dir.join(name));
        extra(&d);
        d
    };
    add(case(
        "FIFO in a series folder",
        with("dcm_fifo", &|d| {
            mkfifo(&d.join("zz_pipe.dcm"));
        }),
        "VOLUME_UNREADABLE",
        "zz_pipe.dcm",
    ));
    add(case(
        "link to /dev/zero in a series folder",
        with("dcm_zero", &|d| std::os::unix::fs::symlink("/dev/zero", d.join("zz_zero.dcm")).unwrap()),
        "VOLUME_UNREADABLE",
        "zz_zero.dcm",
    ));
    add(case(
        "link to /etc in a series folder",
        with("dcm_etc", &|d| std::os::unix::fs::symlink("/etc", d.join("etc")).unwrap()),
        "VOLUME_UNREADABLE",
        "symbolic link to a folder",
    ));
    add(case(
        "link loop in a series folder",
        with("dcm_loop", &|d| std::os::unix::fs::symlink(".", d.join("loop")).unwrap()),
        "VOLUME_UNREADABLE",
        "symbolic link to a folder",
    ));
    add(case(
        "RescaleSlope NaN",
        series("dcm_nan_slope", Series { slope: "NaN".into(), ..Series::ct() }),
        "VOLUME_NON_FINITE",
        "4096 of 4096",
    ));
    add(case(
        "RescaleSlope Infinity",
        series("dcm_inf_slope", Series { slope: "Infinity".into(), ..Series::ct() }),
        "VOLUME_NON_FINITE",
        "4096 of 4096",
    ));
    add(case("4-row slices", series("dcm_thin", Series { rows: 4, ..Series::ct() }), "VOLUME_TOO_SMALL", "4 x 32"));
    add(case(
        "zero orientation",
        series("dcm_zero_orientation", Series { orientation: "0\\0\\0\\0\\0\\0".into(), ..Series::ct() }),
        "VOLUME_BAD_GEOMETRY",
        "ImageOrientationPatient",
    ));
    add(case(
        "NaN position",
        series("dcm_nan_position", Series { position: |k| format!("0\\NaN\\{k}"), ..Series::ct() }),
        "VOLUME_BAD_GEOMETRY",
        "ImagePositionPatient",
    ));
    add(case(
        "8192x8192 slice declared",
        series("dcm_huge_plane", Series { rows: 8192, cols: 8192, slices: 1, ..Series::ct() }),
        "VOLUME_TOO_LARGE",
        "8192 x 8192 pixels exceeds",
    ));
    add(case("MR series", series("dcm_mr", Series { modality: "MR", ..Series::ct() }), "VOLUME_NOT_CT", "MR"));
    add(case(
        "two slices at one position",
        series("dcm_dup", Series { position: |k| format!("0\\0\\{}", (k / 2) as f64 * 2.5), ..Series::ct() }),
        "VOLUME_SLICE_GAPS",
        "position",
    ));
    // A sparse 8 GiB file without the DICM marker: skipped after 132 bytes, never read whole.
    let sparse = dir.join("dcm_sparse");
    std::fs::create_dir_all(&sparse).unwrap();
    std::fs::File::create(sparse.join("big.bin")).unwrap().set_len(8 << 30).unwrap();
    add(case("sparse 8 GiB non-DICOM file alone", sparse, "VOLUME_EMPTY_FOLDER", "dcm_sparse"));
    // A sparse 1 GiB file with the DICM marker beside a good series: over the per-file limit.
    add(case(
        "sparse 1 GiB DICOM file",
        with("dcm_sparse_dicm", &|d| {
            let mut f = std::fs::File::create(d.join("zz_big.dcm")).unwrap();
            f.write_all(&[0u8; 128]).unwrap();
            f.write_all(b"DICM").unwrap();
            f.set_len(1 << 30).unwrap();
        }),
        "VOLUME_TOO_LARGE",
        "zz_big.dcm",
    ));
    std::fs::create_dir_all(dir.join("dcm_empty")).unwrap();
    add(case("empty folder", dir.join("dcm_empty"), "VOLUME_EMPTY_FOLDER", "dcm_empty"));
    cases
}
