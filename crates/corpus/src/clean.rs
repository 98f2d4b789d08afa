//! WikiText cleaning as the LLM-from-scratch seed does it (`[l.strip() for l in f if
//! l.strip()]`): every line stripped of surrounding whitespace, empty lines dropped, the
//! rest joined with newlines. Streaming: chunks may end mid-line, so the unfinished line
//! is carried to the next chunk (memory: one line).

/// Cleans text fed chunk by chunk; [`LineCleaner::finish`] gives the last line.
#[derive(Debug, Default, Clone)]
pub struct LineCleaner {
    /// The line not finished by the last chunk.
    partial: String,
    /// A line was already written (the next one is preceded by a newline).
    wrote: bool,
}

impl LineCleaner {
    /// The cleaned complete lines of `chunk` (with what was carried before it).
    pub fn feed(&mut self, chunk: &str) -> String {
        self.partial.push_str(chunk);
        let Some(last_newline) = self.partial.rfind('\n') else {
            return String::new();
        };
        let complete: String = self.partial.drain(..=last_newline).collect();
        self.clean(&complete)
    }

    /// The cleaned last line (text after the final newline), if any.
    pub fn finish(&mut self) -> String {
        let rest = std::mem::take(&mut self.partial);
        self.clean(&rest)
    }

    fn clean(&mut self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            if self.wrote {
                out.push('\n');
            }
            out.push_str(line);
            self.wrote = true;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(text: &str) -> String {
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        lines.join("\n")
    }

    #[test]
    fn any_chunking_gives_the_seeds_stripped_non_empty_lines() {
        let text = " = Valkyria = \n\n Senjō no Valkyria 3 : \r\n  \n\tThe game began .  \nlast";
        assert_eq!(
            whole(text),
            "= Valkyria =\nSenjō no Valkyria 3 :\nThe game began .\nlast"
        );
        let chars: Vec<char> = text.chars().collect();
        for size in [1, 2, 3, 7, 100] {
            let mut c = LineCleaner::default();
            let mut out = String::new();
            for piece in chars.chunks(size) {
                out.push_str(&c.feed(&piece.iter().collect::<String>()));
            }
            out.push_str(&c.finish());
            assert_eq!(out, whole(text), "chunks of {size}");
        }
    }
}
