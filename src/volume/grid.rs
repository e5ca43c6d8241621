//! The voxel grid and its slicing. Data are stored x-fastest (voxel index i fastest, then j, then k:
//! NIfTI order; for DICOM, i = column, j = row, k = slice). The *slice axis* is the voxel axis
//! nearest the patient's superior-inferior direction; a slice is a 2D image whose columns run
//! along the lower-numbered remaining axis and rows along the higher one. For the usual axial
//! scan (slice axis 2) that is x = column = i, y = row = j. Prompt coordinates (x, y, slice) are
//! these indices of the input volume.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grid {
    /// Voxel counts along i, j, k.
    pub dims: [usize; 3],
    /// 0, 1 or 2: the axis that slices run along.
    pub slice_axis: usize,
}

impl Grid {
    pub fn new(dims: [usize; 3], slice_axis: usize) -> Self {
        assert!(slice_axis < 3, "slice axis is 0, 1 or 2");
        Self { dims, slice_axis }
    }

    pub fn len(&self) -> usize {
        self.dims.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn num_slices(&self) -> usize {
        self.dims[self.slice_axis]
    }

    /// (column axis, row axis) of a slice.
    pub fn plane_axes(&self) -> (usize, usize) {
        match self.slice_axis {
            0 => (1, 2),
            1 => (0, 2),
            _ => (0, 1),
        }
    }

    /// (rows, columns) of a slice.
    pub fn plane_shape(&self) -> (usize, usize) {
        let (c, r) = self.plane_axes();
        (self.dims[r], self.dims[c])
    }

    /// Linear index of voxel (i, j, k).
    pub fn index(&self, ijk: [usize; 3]) -> usize {
        ijk[0] + self.dims[0] * (ijk[1] + self.dims[1] * ijk[2])
    }

    /// Voxel (i, j, k) of pixel (row, col) on slice `s`.
    pub fn voxel(&self, s: usize, row: usize, col: usize) -> [usize; 3] {
        let (ca, ra) = self.plane_axes();
        let mut ijk = [0; 3];
        ijk[self.slice_axis] = s;
        ijk[ca] = col;
        ijk[ra] = row;
        ijk
    }

    /// Slice `s` of `data`, row-major (rows, cols).
    pub fn extract<T: Copy>(&self, data: &[T], s: usize) -> Vec<T> {
        let (rows, cols) = self.plane_shape();
        if self.slice_axis == 2 {
            let n = rows * cols;
            return data[s * n..(s + 1) * n].to_vec();
        }
        let mut out = Vec::with_capacity(rows * cols);
        for r in 0..rows {
            for c in 0..cols {
                out.push(data[self.index(self.voxel(s, r, c))]);
            }
        }
        out
    }

    /// Writes a row-major (rows, cols) plane into slice `s` of `data`.
    pub fn insert<T: Copy>(&self, data: &mut [T], s: usize, plane: &[T]) {
        let (rows, cols) = self.plane_shape();
        assert_eq!(plane.len(), rows * cols, "plane size");
        if self.slice_axis == 2 {
            data[s * rows * cols..(s + 1) * rows * cols].copy_from_slice(plane);
            return;
        }
        for r in 0..rows {
            for c in 0..cols {
                data[self.index(self.voxel(s, r, c))] = plane[r * cols + c];
            }
        }
    }
}

/// The voxel axis whose direction (a column of the RAS affine) is most nearly superior-inferior.
/// Ties go to the highest axis, the usual slice axis of axial scans.
pub fn superior_inferior_axis(affine: &[[f64; 4]; 4]) -> usize {
    let si = |a: usize| {
        let col = [affine[0][a], affine[1][a], affine[2][a]];
        let norm = (col[0] * col[0] + col[1] * col[1] + col[2] * col[2]).sqrt();
        if norm > 0.0 {
            col[2].abs() / norm
        } else {
            0.0
        }
    };
    (0..3).rev().max_by(|&a, &b| si(a).total_cmp(&si(b))).unwrap_or(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extract_and_insert_agree_on_every_axis() {
        let dims = [4, 3, 5];
        let data: Vec<u32> = (0..60).collect();
        for axis in 0..3 {
            let g = Grid::new(dims, axis);
            let mut copy = vec![0u32; 60];
            for s in 0..g.num_slices() {
                let plane = g.extract(&data, s);
                let (rows, cols) = g.plane_shape();
                assert_eq!(plane.len(), rows * cols);
                g.insert(&mut copy, s, &plane);
            }
            assert_eq!(copy, data, "axis {axis}");
        }
        let g = Grid::new(dims, 1);
        // Slice j = 2: columns along i, rows along k.
        assert_eq!(g.plane_shape(), (5, 4));
        assert_eq!(g.extract(&data, 2)[4 + 1], data[g.index([1, 2, 1])]);
    }

    #[test]
    fn slice_axis_follows_superior_inferior() {
        let axial = [[-0.8, 0.0, 0.0, 0.0], [0.0, 0.8, 0.0, 0.0], [0.0, 0.0, 3.0, 0.0], [0.0, 0.0, 0.0, 1.0]];
        assert_eq!(superior_inferior_axis(&axial), 2);
        // Sagittal acquisition stored with the S-I direction on the second axis.
        let sagittal = [[0.0, 0.0, 1.0, 0.0], [1.0, 0.0, 0.0, 0.0], [0.0, -1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]];
        assert_eq!(superior_inferior_axis(&sagittal), 1);
        // Oblique: the axis with the largest S-I component wins.
        let oblique = [[1.0, 0.0, 0.0, 0.0], [0.0, 0.9, 0.44, 0.0], [0.0, 0.44, -0.9, 0.0], [0.0, 0.0, 0.0, 1.0]];
        assert_eq!(superior_inferior_axis(&oblique), 2);
    }
}
