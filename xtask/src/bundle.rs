//! The size of the built web app as a browser downloads it: the wasm and JavaScript files in
//! `dist/`, gzipped.

use std::{
    fs,
    io::{self, Write},
    path::{Path, PathBuf},
};

use anyhow::{Context, Result, bail};
use flate2::{Compression, write::GzEncoder};

/// Prints each wasm and JavaScript file in `dist` with its raw and gzipped size, then the total.
pub fn report(dist: &Path) -> Result<()> {
    let mut files = Vec::new();
    collect_code(dist, &mut files).with_context(|| format!("listing {}", dist.display()))?;
    files.sort();
    if !files.iter().any(|file| has_extension(file, "wasm")) {
        bail!("the web app build left no .wasm file in {}", dist.display());
    }
    let (mut raw_total, mut gzipped_total) = (0, 0);
    for file in &files {
        let bytes = fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        let gzipped = gzipped_len(&bytes)?;
        raw_total += bytes.len();
        gzipped_total += gzipped;
        println!(
            "    {}: {} raw, {} gzipped",
            file.strip_prefix(dist).unwrap_or(file).display(),
            kib(bytes.len()),
            kib(gzipped)
        );
    }
    println!(
        "==> web app download (wasm + js): {} gzipped ({gzipped_total} bytes), {} raw",
        kib(gzipped_total),
        kib(raw_total)
    );
    Ok(())
}

/// Every `.wasm` and `.js` file under `dir`, including wasm-bindgen's `snippets/`.
fn collect_code(dir: &Path, files: &mut Vec<PathBuf>) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_code(&path, files)?;
        } else if has_extension(&path, "wasm") || has_extension(&path, "js") {
            files.push(path);
        }
    }
    Ok(())
}

fn has_extension(path: &Path, extension: &str) -> bool {
    path.extension().is_some_and(|ext| ext == extension)
}

/// The length of `bytes` gzipped at the default level (what `gzip` and most servers use).
fn gzipped_len(bytes: &[u8]) -> io::Result<usize> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes)?;
    Ok(encoder.finish()?.len())
}

fn kib(bytes: usize) -> String {
    // Display only: sizes of a web app are far below f64's exact-integer range.
    format!("{:.1} KiB", bytes as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use flate2::read::GzDecoder;

    use super::*;

    #[test]
    fn gzipped_len_is_the_length_of_a_valid_gzip_stream() {
        let text = b"kokuban ".repeat(1000);
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(&text).unwrap();
        let gzipped = encoder.finish().unwrap();
        assert_eq!(gzipped_len(&text).unwrap(), gzipped.len());
        assert!(gzipped.len() < text.len() / 10);

        let mut unzipped = Vec::new();
        GzDecoder::new(gzipped.as_slice())
            .read_to_end(&mut unzipped)
            .unwrap();
        assert_eq!(unzipped, text);
    }
}
