//! The little of ustar (POSIX.1-1988 tar) that image archives need: regular files and
//! directories, owned by root, mtime 0, names of at most 100 bytes.

use anyhow::{Context as _, bail};

const BLOCK: usize = 512;

/// One tar entry. Directory paths end with `/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Path inside the archive, relative.
    pub path: String,
    /// Permission bits.
    pub mode: u32,
    /// Contents (empty for a directory).
    pub contents: Vec<u8>,
}

impl Entry {
    /// A directory (mode 0755); `path` ends with `/`.
    pub fn dir(path: String) -> Self {
        Self {
            path,
            mode: 0o755,
            contents: Vec::new(),
        }
    }

    /// A regular file.
    pub fn file(path: String, mode: u32, contents: Vec<u8>) -> Self {
        Self {
            path,
            mode,
            contents,
        }
    }

    /// Whether it is a directory.
    pub fn is_dir(&self) -> bool {
        self.path.ends_with('/')
    }
}

/// `value` as a NUL-terminated octal number filling `field`.
fn octal(field: &mut [u8], value: u64) -> anyhow::Result<()> {
    let digits = format!("{value:0width$o}", width = field.len() - 1);
    if digits.len() != field.len() - 1 {
        bail!("{value} does not fit in a {}-byte tar field", field.len());
    }
    field[..digits.len()].copy_from_slice(digits.as_bytes());
    field[digits.len()] = 0;
    Ok(())
}

/// A tar archive of `entries`, in order, ending with the two zero blocks.
pub fn write_tar(entries: &[Entry]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    for e in entries {
        if e.path.len() > 100 {
            bail!("{}: tar names here are at most 100 bytes", e.path);
        }
        let mut h = [0u8; BLOCK];
        h[..e.path.len()].copy_from_slice(e.path.as_bytes());
        octal(&mut h[100..108], u64::from(e.mode))?;
        octal(&mut h[108..116], 0)?; // uid
        octal(&mut h[116..124], 0)?; // gid
        octal(&mut h[124..136], e.contents.len() as u64)?;
        octal(&mut h[136..148], 0)?; // mtime
        h[156] = if e.is_dir() { b'5' } else { b'0' };
        h[257..263].copy_from_slice(b"ustar\0");
        h[263..265].copy_from_slice(b"00");
        h[265..269].copy_from_slice(b"root");
        h[297..301].copy_from_slice(b"root");
        // The checksum is computed with its own field as eight spaces.
        h[148..156].copy_from_slice(b"        ");
        let sum: u32 = h.iter().map(|b| u32::from(*b)).sum();
        let sum = format!("{sum:06o}\0 ");
        h[148..156].copy_from_slice(sum.as_bytes());
        out.extend_from_slice(&h);
        out.extend_from_slice(&e.contents);
        out.resize(out.len().next_multiple_of(BLOCK), 0);
    }
    out.resize(out.len() + 2 * BLOCK, 0);
    Ok(out)
}

fn parse_octal(field: &[u8]) -> anyhow::Result<u64> {
    let text = std::str::from_utf8(field)
        .context("a tar number is not text")?
        .trim_matches(|c: char| c == '\0' || c == ' ');
    if text.is_empty() {
        return Ok(0);
    }
    u64::from_str_radix(text, 8).with_context(|| format!("{text:?} is not an octal number"))
}

/// The regular files and directories of a tar archive, checking every header's checksum.
pub fn read_tar(bytes: &[u8]) -> anyhow::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    let mut at = 0;
    while at + BLOCK <= bytes.len() {
        let h = &bytes[at..at + BLOCK];
        if h.iter().all(|b| *b == 0) {
            return Ok(entries);
        }
        let mut blank = [0u8; BLOCK];
        blank.copy_from_slice(h);
        blank[148..156].copy_from_slice(b"        ");
        let sum: u64 = blank.iter().map(|b| u64::from(*b)).sum();
        if parse_octal(&h[148..156])? != sum {
            bail!("bad tar header checksum at offset {at}");
        }
        let name_end = h[..100].iter().position(|b| *b == 0).unwrap_or(100);
        let mut path = String::from_utf8(h[..name_end].to_vec()).context("a non-UTF-8 name")?;
        let prefix_end = 345 + h[345..500].iter().position(|b| *b == 0).unwrap_or(155);
        if prefix_end > 345 {
            let prefix = std::str::from_utf8(&h[345..prefix_end]).context("a non-UTF-8 prefix")?;
            path = format!("{prefix}/{path}");
        }
        let size = usize::try_from(parse_octal(&h[124..136])?)?;
        let mode = u32::try_from(parse_octal(&h[100..108])?)?;
        let start = at + BLOCK;
        let end = start
            .checked_add(size)
            .filter(|end| *end <= bytes.len())
            .with_context(|| format!("{path}: truncated archive"))?;
        match h[156] {
            b'0' | 0 => entries.push(Entry::file(path, mode, bytes[start..end].to_vec())),
            b'5' => {
                if !path.ends_with('/') {
                    path.push('/');
                }
                entries.push(Entry {
                    path,
                    mode,
                    contents: Vec::new(),
                });
            }
            other => bail!("{path}: unsupported tar entry type {}", char::from(other)),
        }
        at = start + size.next_multiple_of(BLOCK);
    }
    bail!("the archive ends without its two zero blocks")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_written_reads_back_the_same() {
        let entries = vec![
            Entry::dir("etc/".to_owned()),
            Entry::file("etc/a".to_owned(), 0o644, b"hello".to_vec()),
            Entry::file("b".to_owned(), 0o755, vec![7; 1024]),
        ];
        let bytes = write_tar(&entries).expect("tar round trip");
        assert_eq!(bytes.len() % BLOCK, 0);
        assert_eq!(read_tar(&bytes).expect("tar round trip"), entries);
    }

    #[test]
    fn a_corrupted_header_is_refused() {
        let mut bytes = write_tar(&[Entry::file("a".to_owned(), 0o644, b"x".to_vec())])
            .expect("tar round trip");
        bytes[0] = b'b';
        assert!(read_tar(&bytes).is_err());
    }
}
