//! Outputs of a run are written to a staging folder beside the output folder and moved into it
//! at the end, so a run that fails half-way leaves nothing behind.

use std::path::{Path, PathBuf};

pub struct Staging {
    pub dir: PathBuf,
    target: PathBuf,
    published: bool,
}

impl Staging {
    pub fn new(target: &Path) -> std::io::Result<Self> {
        let name = target.file_name().and_then(|n| n.to_str()).unwrap_or("out");
        let dir = target.with_file_name(format!(".{name}.partial-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        Ok(Self { dir, target: target.to_path_buf(), published: false })
    }

    /// Moves every staged file into the output folder (created if needed).
    pub fn publish(mut self) -> std::io::Result<()> {
        std::fs::create_dir_all(&self.target)?;
        for entry in std::fs::read_dir(&self.dir)? {
            let entry = entry?;
            let dest = self.target.join(entry.file_name());
            if dest.is_dir() {
                std::fs::remove_dir_all(&dest)?;
            }
            std::fs::rename(entry.path(), &dest)?;
        }
        self.published = true;
        std::fs::remove_dir(&self.dir)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.published {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
