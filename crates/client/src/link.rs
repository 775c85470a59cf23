//! Room links: what the page's URL opens, and the links the share buttons copy.
//!
//! A room is `/r/{room}`; its capability token travels in the fragment (`#edit=…` or
//! `#view=…`), which browsers never send to a server. The app that creates a room also keeps
//! the view token in the edit link's fragment (`#edit=…&view=…`), so that an editor can hand
//! out the view-only link later: the view token cannot be derived from the edit token.

use kokuban_protocol::{RoomId, Token};

/// What the page's URL opens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Page {
    /// `/`: the landing page.
    Landing,
    /// `/r/{room}`.
    Room(RoomLink),
}

/// A room and the tokens the URL carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomLink {
    /// The room.
    pub room: RoomId,
    /// The edit token, if the link has one.
    pub edit: Option<Token>,
    /// The view token, if the link has one.
    pub view: Option<Token>,
}

impl RoomLink {
    /// The token to open the room with: edit if we have it.
    pub fn token(&self) -> Option<&Token> {
        self.edit.as_ref().or(self.view.as_ref())
    }

    /// The edit link (path and fragment), if we hold the edit token.
    pub fn edit_url(&self) -> Option<String> {
        let edit = self.edit.as_ref()?;
        Some(match &self.view {
            Some(view) => format!("/r/{}#edit={edit}&view={view}", self.room),
            None => format!("/r/{}#edit={edit}", self.room),
        })
    }

    /// The view-only link, if we know the view token.
    pub fn view_url(&self) -> Option<String> {
        Some(format!("/r/{}#view={}", self.room, self.view.as_ref()?))
    }

    /// The room's links after a reset, from the `edit_url` and `view_url` that
    /// `POST /api/rooms/{room}/links` answers; `None` unless both are links to this room with
    /// their token.
    pub fn after_reset(&self, edit_url: &str, view_url: &str) -> Option<RoomLink> {
        let token = |url: &str, key: &str| {
            let (path, hash) = url.split_once('#')?;
            match parse(path, hash) {
                Page::Room(l) if l.room == self.room => {
                    if key == "edit" {
                        l.edit
                    } else {
                        l.view
                    }
                }
                _ => None,
            }
        };
        Some(RoomLink {
            room: self.room.clone(),
            edit: Some(token(edit_url, "edit")?),
            view: Some(token(view_url, "view")?),
        })
    }
}

/// Parses `location.pathname` and `location.hash`.
pub fn parse(path: &str, hash: &str) -> Page {
    let Some(rest) = path.strip_prefix("/r/") else {
        return Page::Landing;
    };
    let Ok(room) = RoomId::new(rest.trim_end_matches('/')) else {
        return Page::Landing;
    };
    let mut link = RoomLink {
        room,
        edit: None,
        view: None,
    };
    for pair in hash.trim_start_matches('#').split('&') {
        let Some((key, value)) = pair.split_once('=') else {
            continue;
        };
        let Ok(token) = Token::new(value) else {
            continue;
        };
        match key {
            "edit" => link.edit = Some(token),
            "view" => link.view = Some(token),
            _ => {}
        }
    }
    Page::Room(link)
}

/// Adds the view token to an edit link returned by `POST /api/rooms`.
pub fn with_view_token(edit_url: &str, view_url: &str) -> String {
    match view_url.split_once("#view=") {
        Some((_, view)) if edit_url.contains("#edit=") && !edit_url.contains("view=") => {
            format!("{edit_url}&view={view}")
        }
        _ => edit_url.to_string(),
    }
}

/// The WebSocket URL of a room, from the page's `location.protocol` and `location.host`.
pub fn socket_url(protocol: &str, host: &str, room: &RoomId) -> String {
    let scheme = if protocol == "https:" { "wss" } else { "ws" };
    format!("{scheme}://{host}/ws/{room}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rooms_and_tokens() {
        assert_eq!(parse("/", ""), Page::Landing);
        assert_eq!(parse("/r/", ""), Page::Landing);
        assert_eq!(parse("/r/a%20b", ""), Page::Landing);
        let Page::Room(l) = parse("/r/abc/", "#edit=E1&view=V1&x=1") else {
            panic!()
        };
        assert_eq!(l.room.as_str(), "abc");
        assert_eq!(l.token().unwrap().as_str(), "E1");
        assert_eq!(l.edit_url().unwrap(), "/r/abc#edit=E1&view=V1");
        assert_eq!(l.view_url().unwrap(), "/r/abc#view=V1");
        let Page::Room(v) = parse("/r/abc", "#view=V1") else {
            panic!()
        };
        assert_eq!(v.token().unwrap().as_str(), "V1");
        assert!(v.edit_url().is_none());
        let Page::Room(none) = parse("/r/abc", "") else {
            panic!()
        };
        assert!(none.token().is_none());
    }

    #[test]
    fn a_reset_answer_becomes_the_new_links_of_the_same_room() {
        let Page::Room(old) = parse("/r/abc", "#edit=E1&view=V1") else {
            panic!()
        };
        let new = old.after_reset("/r/abc#edit=E2", "/r/abc#view=V2").unwrap();
        assert_eq!(new.edit_url().unwrap(), "/r/abc#edit=E2&view=V2");
        assert_eq!(new.token().unwrap().as_str(), "E2");
        assert!(
            old.after_reset("/r/other#edit=E2", "/r/abc#view=V2")
                .is_none()
        );
        assert!(
            old.after_reset("/r/abc#view=E2", "/r/abc#view=V2")
                .is_none()
        );
        assert!(old.after_reset("/r/abc#edit=E2", "").is_none());
    }

    #[test]
    fn links_and_socket_urls() {
        assert_eq!(
            with_view_token("/r/a#edit=E", "/r/a#view=V"),
            "/r/a#edit=E&view=V"
        );
        assert_eq!(with_view_token("/r/a#edit=E", "/r/a"), "/r/a#edit=E");
        let room = RoomId::new("abc").unwrap();
        assert_eq!(socket_url("https:", "h:1", &room), "wss://h:1/ws/abc");
        assert_eq!(socket_url("http:", "h", &room), "ws://h/ws/abc");
    }
}
