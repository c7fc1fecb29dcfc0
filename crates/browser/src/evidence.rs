//! Screenshots as evidence, with care: they may show card numbers and
//! personal data.
//!
//! * Configured regions (the runbook's `[[redact]]`) are blacked out in the
//!   decoded image **before** it is hashed or stored; the unredacted bytes
//!   never reach the disk.
//! * The audit chain gets the SHA-256 of the stored image
//!   ([`EvidenceSink`]), so an image can later be checked against the
//!   chain, and can be deleted when its retention period ends without
//!   breaking it.
//! * Images live under `dir/` for `retention` ([`EvidenceStore::sweep`]
//!   deletes older ones).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use image::{ImageFormat, Rgba, RgbaImage};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::BrowserError;

/// A region to black out, in screenshot pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rect {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

/// One stored screenshot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Evidence {
    /// What it shows (`before-confirmation`, `done`, `failed at step 7`).
    pub label: String,
    /// Hex SHA-256 of the stored (redacted) PNG.
    pub sha256: String,
    /// Where the image is kept.
    pub path: String,
    /// How many regions were blacked out.
    pub redacted: usize,
}

/// Where the hashes go: the engine appends them to the audit chain.
#[async_trait]
pub trait EvidenceSink: Send + Sync {
    /// One screenshot of `connection`'s run for `subject` (an email).
    async fn record(&self, connection: &str, subject: &str, runbook: &str, evidence: &Evidence);
}

/// Blacks out `rects` (clamped to the image) in a PNG; returns the new PNG.
pub fn redact_png(png: &[u8], rects: &[Rect]) -> Result<Vec<u8>, BrowserError> {
    let img = image::load_from_memory_with_format(png, ImageFormat::Png)
        .map_err(|e| BrowserError::Evidence(format!("screenshot is not a PNG: {e}")))?;
    let mut rgba: RgbaImage = img.to_rgba8();
    let (w, h) = (rgba.width() as f64, rgba.height() as f64);
    for r in rects {
        // A little margin: anti-aliased glyph edges stay inside.
        let x0 = (r.x - 2.0).clamp(0.0, w) as u32;
        let y0 = (r.y - 2.0).clamp(0.0, h) as u32;
        let x1 = (r.x + r.w + 2.0).clamp(0.0, w) as u32;
        let y1 = (r.y + r.h + 2.0).clamp(0.0, h) as u32;
        for y in y0..y1 {
            for x in x0..x1 {
                rgba.put_pixel(x, y, Rgba([0, 0, 0, 255]));
            }
        }
    }
    let mut out = std::io::Cursor::new(Vec::new());
    rgba.write_to(&mut out, ImageFormat::Png)
        .map_err(|e| BrowserError::Evidence(format!("cannot encode PNG: {e}")))?;
    Ok(out.into_inner())
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The folder screenshots are kept in, and for how long.
#[derive(Clone, Debug)]
pub struct EvidenceStore {
    pub dir: PathBuf,
    pub retention: Duration,
}

impl EvidenceStore {
    pub fn new(dir: impl Into<PathBuf>, retention: Duration) -> Self {
        EvidenceStore {
            dir: dir.into(),
            retention,
        }
    }

    /// Redacts, hashes and stores one screenshot.
    pub fn store(&self, label: &str, png: &[u8], rects: &[Rect]) -> Result<Evidence, BrowserError> {
        let clean = redact_png(png, rects)?;
        let sha = sha256_hex(&clean);
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| BrowserError::Evidence(format!("{}: {e}", self.dir.display())))?;
        let path = self.dir.join(format!("{sha}.png"));
        write_private(&path, &clean)?;
        Ok(Evidence {
            label: label.to_string(),
            sha256: sha,
            path: path.display().to_string(),
            redacted: rects.len(),
        })
    }

    /// Deletes images older than the retention period (by modification
    /// time, as of `now`). Returns how many were deleted.
    pub fn sweep(&self, now: SystemTime) -> Result<usize, BrowserError> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Ok(0);
        };
        let mut n = 0;
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().is_none_or(|x| x != "png") {
                continue;
            }
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|m| now.duration_since(m).ok())
                .is_some_and(|age| age > self.retention);
            if old {
                std::fs::remove_file(&p)
                    .map_err(|e| BrowserError::Evidence(format!("{}: {e}", p.display())))?;
                n += 1;
            }
        }
        Ok(n)
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), BrowserError> {
    use std::io::Write as _;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        o.mode(0o600);
    }
    let mut f = o
        .open(path)
        .map_err(|e| BrowserError::Evidence(format!("{}: {e}", path.display())))?;
    f.write_all(bytes)
        .map_err(|e| BrowserError::Evidence(format!("{}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = RgbaImage::from_pixel(w, h, Rgba([255, 255, 255, 255]));
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn redaction_blacks_out_the_region_before_the_hash_and_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = EvidenceStore::new(dir.path(), Duration::from_secs(3600));
        let raw = png(40, 20);
        let e = store
            .store(
                "t",
                &raw,
                &[Rect {
                    x: 10.0,
                    y: 5.0,
                    w: 10.0,
                    h: 5.0,
                }],
            )
            .unwrap();
        let kept = std::fs::read(&e.path).unwrap();
        assert_eq!(sha256_hex(&kept), e.sha256);
        assert_ne!(e.sha256, sha256_hex(&raw));
        let img = image::load_from_memory(&kept).unwrap().to_rgba8();
        assert_eq!(img.get_pixel(15, 7), &Rgba([0, 0, 0, 255]));
        assert_eq!(img.get_pixel(35, 18), &Rgba([255, 255, 255, 255]));
        // Out-of-bounds rectangles are clamped, not a panic.
        store
            .store(
                "t2",
                &raw,
                &[Rect {
                    x: 35.0,
                    y: 15.0,
                    w: 100.0,
                    h: 100.0,
                }],
            )
            .unwrap();
    }

    #[test]
    fn sweep_deletes_only_what_outlived_the_retention() {
        let dir = tempfile::tempdir().unwrap();
        let store = EvidenceStore::new(dir.path(), Duration::from_secs(3600));
        store.store("t", &png(4, 4), &[]).unwrap();
        assert_eq!(store.sweep(SystemTime::now()).unwrap(), 0);
        let later = SystemTime::now() + Duration::from_secs(7200);
        assert_eq!(store.sweep(later).unwrap(), 1);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
