//! Following a JSON-lines file as another process appends to it (`metrics.jsonl`,
//! `samples.jsonl`): each poll returns the whole lines added since the last one.
//!
//! A line is taken only once its newline is there, so a line caught mid-write waits for
//! the next poll. A whole line that is not a record (a writer died mid-line and a later
//! one appended after it) is skipped with a warning and following goes on. A file that
//! was replaced (a resumed run rewrites its metrics) or shrank is read again from the
//! start, flagged as a reset.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// At most this much is read per poll (the rest comes with the next ones).
const MAX_READ: u64 = 8 << 20;

/// A file being followed.
#[derive(Debug)]
pub struct LineFollower {
    path: PathBuf,
    /// Bytes consumed so far.
    offset: u64,
    /// The file's identity when last read (inode on Unix), to notice a replacement.
    identity: Option<u64>,
    /// Bytes of a line whose newline has not arrived yet.
    pending: Vec<u8>,
    /// Whole lines consumed (for warnings).
    lines: usize,
}

/// What one poll found.
#[derive(Debug)]
pub struct Update<T> {
    /// The file was replaced or truncated: earlier records are void, `items` start over.
    pub reset: bool,
    /// New records, in file order.
    pub items: Vec<T>,
    /// One warning per skipped line.
    pub skipped: Vec<String>,
}

impl LineFollower {
    /// Follows `path` from its start (it need not exist yet).
    pub fn new(path: &Path) -> LineFollower {
        LineFollower {
            path: path.to_path_buf(),
            offset: 0,
            identity: None,
            pending: Vec::new(),
            lines: 0,
        }
    }

    /// Reads what was appended since the last poll.
    pub fn poll<T: DeserializeOwned>(&mut self) -> Update<T> {
        let mut update = Update {
            reset: false,
            items: Vec::new(),
            skipped: Vec::new(),
        };
        let Ok(meta) = std::fs::metadata(&self.path) else {
            // gone (e.g. `--overwrite`): what was shown is void
            update.reset = self.offset > 0;
            self.restart(None);
            return update;
        };
        let identity = file_identity(&meta);
        if meta.len() < self.offset || (self.offset > 0 && identity != self.identity) {
            update.reset = true;
            self.restart(identity);
        }
        self.identity = identity;
        if meta.len() == self.offset {
            return update;
        }
        match self.read_new(meta.len()) {
            Ok(bytes) => self.pending.extend_from_slice(&bytes),
            Err(e) => {
                update
                    .skipped
                    .push(format!("{}: cannot read: {e}", self.path.display()));
                return update;
            }
        }
        self.take_lines(&mut update);
        update
    }

    fn restart(&mut self, identity: Option<u64>) {
        self.offset = 0;
        self.identity = identity;
        self.pending.clear();
        self.lines = 0;
    }

    fn read_new(&mut self, len: u64) -> std::io::Result<Vec<u8>> {
        let mut f = std::fs::File::open(&self.path)?;
        f.seek(SeekFrom::Start(self.offset))?;
        let mut buf = Vec::new();
        f.take((len - self.offset).min(MAX_READ))
            .read_to_end(&mut buf)?;
        self.offset += buf.len() as u64;
        Ok(buf)
    }

    /// Parses the whole lines in `pending`, keeping an unfinished last one.
    fn take_lines<T: DeserializeOwned>(&mut self, update: &mut Update<T>) {
        let Some(last_newline) = self.pending.iter().rposition(|&b| b == b'\n') else {
            return;
        };
        let rest = self.pending.split_off(last_newline + 1);
        let whole = std::mem::replace(&mut self.pending, rest);
        for line in whole.split(|&b| b == b'\n') {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            self.lines += 1;
            match serde_json::from_slice(line) {
                Ok(item) => update.items.push(item),
                Err(e) => update.skipped.push(format!(
                    "{}: skipped line {} (not a whole record: {e})",
                    self.path.display(),
                    self.lines
                )),
            }
        }
    }
}

#[cfg(unix)]
fn file_identity(meta: &std::fs::Metadata) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    Some(meta.ino())
}

#[cfg(not(unix))]
fn file_identity(_meta: &std::fs::Metadata) -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[derive(Debug, PartialEq, serde::Deserialize)]
    struct Rec {
        step: usize,
    }

    fn append(path: &Path, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    fn steps(u: &Update<Rec>) -> Vec<usize> {
        u.items.iter().map(|r| r.step).collect()
    }

    #[test]
    fn a_line_caught_mid_write_comes_whole_with_the_next_poll() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("m.jsonl");
        let mut f = LineFollower::new(&p);
        assert!(steps(&f.poll()).is_empty(), "no file yet");
        append(&p, "{\"step\":0}\n{\"st");
        let u = f.poll::<Rec>();
        assert_eq!((steps(&u), u.skipped.len(), u.reset), (vec![0], 0, false));
        append(&p, "ep\":10}\n");
        let u = f.poll::<Rec>();
        assert_eq!((steps(&u), u.skipped.len()), (vec![10], 0));
        assert!(steps(&f.poll()).is_empty(), "nothing new");
    }

    #[test]
    fn a_truncated_line_is_skipped_with_a_warning_and_following_goes_on() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("m.jsonl");
        // a writer died mid-line; the next one appended after it
        append(&p, "{\"step\":0}\n{\"step\":1");
        append(&p, "{\"step\":2}\n\n{\"step\":3}\n");
        let mut f = LineFollower::new(&p);
        let u = f.poll::<Rec>();
        assert_eq!(steps(&u), vec![0, 3]);
        assert_eq!(u.skipped.len(), 1);
        assert!(u.skipped[0].contains("skipped line 2"), "{}", u.skipped[0]);
        append(&p, "{\"step\":4}\n");
        assert_eq!(steps(&f.poll()), vec![4]);
    }

    #[test]
    fn a_replaced_or_truncated_file_is_read_again_from_the_start() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("m.jsonl");
        append(&p, "{\"step\":0}\n{\"step\":10}\n{\"step\":20}\n");
        let mut f = LineFollower::new(&p);
        assert_eq!(steps(&f.poll()), vec![0, 10, 20]);
        // a resume rewrites the file (new inode) keeping the first two, then appends
        let tmp = d.path().join("m.tmp");
        std::fs::write(
            &tmp,
            "{\"step\":0}\n{\"step\":10}\n{\"step\":15}\n{\"step\":20}\n",
        )
        .unwrap();
        std::fs::rename(&tmp, &p).unwrap();
        let u = f.poll::<Rec>();
        assert!(u.reset);
        assert_eq!(steps(&u), vec![0, 10, 15, 20]);
        // truncated in place
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(11)
            .unwrap();
        let u = f.poll::<Rec>();
        assert!(u.reset);
        assert_eq!(steps(&u), vec![0]);
        std::fs::remove_file(&p).unwrap();
        assert!(f.poll::<Rec>().reset);
    }
}
