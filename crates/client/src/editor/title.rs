//! The board's title: shown to everyone, set by any editor with an ordinary op, so that the
//! room's order settles two renames at once and the title reaches late joiners in the
//! snapshot.

use kokuban_protocol::limits::MAX_TITLE_BYTES;
use kokuban_protocol::{Op, Title, is_hidden};

use super::Editor;

impl Editor {
    /// The board's title as this tab sees it (`None`: untitled).
    pub fn title(&self) -> Option<&str> {
        self.session.view().title().map(Title::as_str)
    }

    /// Names the board for everyone; an empty (or blank) title removes the name. What the
    /// protocol does not allow in a title is left out rather than refused (see
    /// [`fit_title`]). A view-only tab changes nothing.
    pub fn set_title(&mut self, typed: &str) {
        if !self.can_edit() {
            return;
        }
        let title = fit_title(typed);
        if self.title().unwrap_or("") != title.as_str() {
            self.local(vec![Op::Title { title }]);
        }
        // The field shows the title again as the board has it (trimmed, or unchanged).
        self.bump();
    }
}

/// `typed` as a title: line breaks become spaces, other control, invisible and
/// direction-changing characters are dropped, surrounding white space is trimmed, and a title
/// longer than the protocol allows is cut at a character boundary.
pub fn fit_title(typed: &str) -> Title {
    let mut out = String::new();
    for c in typed.chars() {
        let c = if c == '\n' || c == '\r' || c == '\t' {
            ' '
        } else {
            c
        };
        if c.is_control() || is_hidden(c) {
            continue;
        }
        if out.len() + c.len_utf8() > MAX_TITLE_BYTES {
            break;
        }
        out.push(c);
    }
    // Only characters the checks accept are kept, and the length is within the limit.
    Title::new(out.trim()).expect("a fitted title is valid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typed_title_is_cleaned_and_cut_rather_than_refused() {
        assert_eq!(fit_title("  Roadmap\n2027 ").as_str(), "Roadmap 2027");
        assert_eq!(fit_title("Ada\u{202E}nimda\u{200B}").as_str(), "Adanimda");
        let long = "漢".repeat(MAX_TITLE_BYTES);
        let cut = fit_title(&long);
        assert_eq!(cut.as_str().len(), MAX_TITLE_BYTES);
        assert!(cut.as_str().chars().all(|c| c == '漢'));
        assert_eq!(fit_title(" \t ").as_str(), "");
    }
}
