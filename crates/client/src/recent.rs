//! The boards this browser opened, so that the landing page can offer them again.
//!
//! Kept in the browser's storage as JSON under [`KEY`]: one entry per room, newest first, at
//! most [`MAX_BOARDS`]. An entry holds the link the board was opened with (its token in the
//! fragment): without it the board could not be opened again. What the storage holds is
//! read leniently: anything unreadable counts as no boards rather than an error.

use serde::{Deserialize, Serialize};

use crate::link::RoomLink;

/// The storage key of the list.
pub const KEY: &str = "kokuban.recent";

/// Boards remembered; opening one more forgets the one opened longest ago.
pub const MAX_BOARDS: usize = 20;

/// A board opened in this browser.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecentBoard {
    /// The room id.
    pub room: String,
    /// The link that opens it (path and fragment): the edit link if we held it.
    pub link: String,
    /// When it was last opened, in ms since the Unix epoch.
    pub opened_ms: f64,
    /// The board's title when it was last seen (`None`: untitled, or not seen yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// A small picture of the board as it was left (a `data:` URL of at most
    /// [`MAX_THUMBNAIL_CHARS`]; `None`: empty, or not drawn yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbnail: Option<String>,
}

/// The longest thumbnail kept, in characters of its `data:` URL: twenty boards' pictures stay
/// well within the few megabytes a browser gives a site's storage.
pub const MAX_THUMBNAIL_CHARS: usize = 24 * 1024;

/// The boards, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecentBoards(Vec<RecentBoard>);

impl RecentBoards {
    /// The list as stored (`None`, or anything unreadable: no boards).
    pub fn parse(stored: Option<&str>) -> Self {
        let mut boards: Vec<RecentBoard> = stored
            .and_then(|s| serde_json::from_str(s).ok())
            .unwrap_or_default();
        boards.sort_by(|a, b| b.opened_ms.total_cmp(&a.opened_ms));
        boards.dedup_by(|later, first| later.room == first.room);
        boards.truncate(MAX_BOARDS);
        Self(boards)
    }

    /// The text to store.
    pub fn to_stored(&self) -> String {
        serde_json::to_string(&self.0).unwrap_or_else(|_| "[]".into())
    }

    /// The boards, newest first.
    pub fn boards(&self) -> &[RecentBoard] {
        &self.0
    }

    /// Records that `link` was opened at `now_ms`: its entry moves to the front with the link
    /// given (a reset replaces the old one). A link without a token opens nothing later and is
    /// not recorded.
    pub fn opened(&mut self, link: &RoomLink, now_ms: f64) {
        let Some(url) = link.edit_url().or_else(|| link.view_url()) else {
            return;
        };
        let room = link.room.as_str();
        // The title and picture of last time stand until the board is seen again.
        let (title, thumbnail) = self
            .0
            .iter()
            .find(|b| b.room == room)
            .map(|b| (b.title.clone(), b.thumbnail.clone()))
            .unwrap_or_default();
        self.0.retain(|b| b.room != room);
        self.0.insert(
            0,
            RecentBoard {
                room: room.to_owned(),
                link: url,
                opened_ms: now_ms,
                title,
                thumbnail,
            },
        );
        self.0.truncate(MAX_BOARDS);
    }

    /// Records the title the board of `room` has now; returns whether that changed the list
    /// (so that it is written back only then).
    pub fn titled(&mut self, room: &str, title: Option<&str>) -> bool {
        let Some(board) = self.0.iter_mut().find(|b| b.room == room) else {
            return false;
        };
        if board.title.as_deref() == title {
            return false;
        }
        board.title = title.map(str::to_owned);
        true
    }

    /// Records the picture of `room`'s board as it is left (`None`: it is empty; a picture
    /// longer than [`MAX_THUMBNAIL_CHARS`] is not kept); returns whether that changed the list.
    pub fn pictured(&mut self, room: &str, thumbnail: Option<String>) -> bool {
        let thumbnail =
            thumbnail.filter(|t| t.len() <= MAX_THUMBNAIL_CHARS && t.starts_with("data:image/"));
        let Some(board) = self.0.iter_mut().find(|b| b.room == room) else {
            return false;
        };
        if board.thumbnail == thumbnail {
            return false;
        }
        board.thumbnail = thumbnail;
        true
    }

    /// Forgets the board of `room`.
    pub fn remove(&mut self, room: &str) {
        self.0.retain(|b| b.room != room);
    }
}

/// "3 min ago", "yesterday", a date: when a board was last opened, as the list says it.
pub fn ago(opened_ms: f64, now_ms: f64) -> String {
    let minutes = ((now_ms - opened_ms) / 60_000.0).max(0.0) as u64;
    match minutes {
        0 => "just now".into(),
        1..=59 => format!("{minutes} min ago"),
        60..=1439 => format!("{} h ago", minutes / 60),
        1440..=2879 => "yesterday".into(),
        _ => format!("{} days ago", minutes / 1440),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::{Page, parse};

    fn link(path: &str, hash: &str) -> RoomLink {
        match parse(path, hash) {
            Page::Room(l) => l,
            Page::Landing => panic!("not a room: {path}"),
        }
    }

    #[test]
    fn boards_are_kept_newest_first_once_each_and_survive_storage() {
        let mut r = RecentBoards::parse(None);
        r.opened(&link("/r/aaa", "#edit=E1&view=V1"), 1.0);
        r.opened(&link("/r/bbb", "#view=V2"), 2.0);
        r.opened(&link("/r/aaa", "#edit=E3&view=V3"), 3.0);
        let rooms: Vec<_> = r.boards().iter().map(|b| b.room.as_str()).collect();
        assert_eq!(rooms, ["aaa", "bbb"]);
        assert_eq!(r.boards()[0].link, "/r/aaa#edit=E3&view=V3");
        assert_eq!(r.boards()[1].link, "/r/bbb#view=V2");
        let back = RecentBoards::parse(Some(&r.to_stored()));
        assert_eq!(back, r);
        r.remove("aaa");
        assert_eq!(r.boards().len(), 1);
    }

    #[test]
    fn a_boards_title_is_kept_across_openings_and_lists_written_before_titles_still_read() {
        let mut r =
            RecentBoards::parse(Some(r#"[{"room":"a","link":"/r/a#view=V","opened_ms":1}]"#));
        assert_eq!(r.boards()[0].title, None);
        assert!(r.titled("a", Some("Roadmap")));
        assert!(
            !r.titled("a", Some("Roadmap")),
            "unchanged: nothing to write"
        );
        assert!(
            !r.titled("zzz", Some("Roadmap")),
            "a board not listed is not added"
        );
        r.opened(&link("/r/a", "#edit=E"), 2.0);
        let back = RecentBoards::parse(Some(&r.to_stored()));
        assert_eq!(back.boards()[0].title.as_deref(), Some("Roadmap"));
        assert!(r.titled("a", None));
        assert!(
            !r.to_stored().contains("title"),
            "untitled boards store no title"
        );
    }

    #[test]
    fn a_boards_picture_is_kept_only_when_small_and_an_image() {
        let mut r = RecentBoards::default();
        r.opened(&link("/r/a", "#view=V"), 1.0);
        assert!(r.pictured("a", Some("data:image/webp;base64,AAAA".into())));
        assert!(!r.pictured("a", Some("data:image/webp;base64,AAAA".into())));
        r.opened(&link("/r/a", "#view=V"), 2.0);
        assert!(
            RecentBoards::parse(Some(&r.to_stored())).boards()[0]
                .thumbnail
                .is_some()
        );
        let huge = format!("data:image/png;base64,{}", "A".repeat(MAX_THUMBNAIL_CHARS));
        assert!(
            r.pictured("a", Some(huge)),
            "too large: the old one is dropped"
        );
        assert_eq!(r.boards()[0].thumbnail, None);
        assert!(!r.pictured("a", Some("javascript:alert(1)".into())));
        assert_eq!(r.boards()[0].thumbnail, None);
    }

    #[test]
    fn a_link_without_a_token_is_not_kept_and_the_list_is_capped() {
        let mut r = RecentBoards::default();
        r.opened(&link("/r/aaa", ""), 1.0);
        assert!(r.boards().is_empty());
        for i in 0..(MAX_BOARDS + 5) {
            r.opened(&link(&format!("/r/room{i}"), "#view=V"), i as f64);
        }
        assert_eq!(r.boards().len(), MAX_BOARDS);
        assert_eq!(r.boards()[0].room, format!("room{}", MAX_BOARDS + 4));
    }

    #[test]
    fn unreadable_storage_is_no_boards_and_stored_order_is_repaired() {
        assert!(RecentBoards::parse(Some("not json")).boards().is_empty());
        assert!(RecentBoards::parse(Some("{\"a\":1}")).boards().is_empty());
        let stored = r#"[{"room":"a","link":"/r/a#view=V","opened_ms":1},
                         {"room":"b","link":"/r/b#view=V","opened_ms":5},
                         {"room":"a","link":"/r/a#view=W","opened_ms":3}]"#;
        let r = RecentBoards::parse(Some(stored));
        let got: Vec<_> = r.boards().iter().map(|b| b.link.as_str()).collect();
        assert_eq!(got, ["/r/b#view=V", "/r/a#view=W"]);
    }

    #[test]
    fn ages_read_like_a_person_would_say_them() {
        let min = 60_000.0;
        assert_eq!(ago(0.0, 30_000.0), "just now");
        assert_eq!(ago(0.0, 5.0 * min), "5 min ago");
        assert_eq!(ago(0.0, 125.0 * min), "2 h ago");
        assert_eq!(ago(0.0, 1500.0 * min), "yesterday");
        assert_eq!(ago(0.0, 3.0 * 1440.0 * min), "3 days ago");
        assert_eq!(ago(10.0, 0.0), "just now");
    }
}
