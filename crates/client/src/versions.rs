//! The versions of the board the server keeps (before every Clear, and every few minutes of
//! drawing), as the History panel lists them: read from `GET /api/rooms/{room}/checkpoints`.
//! A version's board is a snapshot in the board model's format; [`Editor::show_version`]
//! shows it.
//!
//! [`Editor::show_version`]: crate::Editor::show_version

use serde::Deserialize;

/// Authors named in full in a version's line; more are counted.
const NAMED: usize = 3;

/// A version of the board.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Version {
    /// Its id: when it was kept, in ms since the Unix epoch.
    pub id: u64,
    /// Why it was kept: `"clear"` (the board just before someone cleared it) or `"interval"`.
    pub reason: String,
    /// Who drew since the version before it.
    #[serde(default)]
    pub authors: Vec<String>,
    /// Items on the board.
    pub items: usize,
}

/// The server's answer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Listing {
    /// The versions, newest first.
    #[serde(rename = "checkpoints")]
    pub versions: Vec<Version>,
    /// Whether view links may read them.
    #[serde(default = "yes")]
    pub viewers: bool,
}

fn yes() -> bool {
    true
}

/// The server's answer, its versions newest first; an error for anything else.
pub fn parse(json: &str) -> Result<Listing, String> {
    let mut listing: Listing =
        serde_json::from_str(json).map_err(|_| "unexpected answer from the server.".to_string())?;
    listing.versions.sort_by_key(|v| std::cmp::Reverse(v.id));
    Ok(listing)
}

impl Version {
    /// What it is: "Before a Clear · 12 items", "3 items".
    pub fn what(&self) -> String {
        let items = match self.items {
            1 => "1 item".to_string(),
            n => format!("{n} items"),
        };
        if self.reason == "clear" {
            format!("Before a Clear · {items}")
        } else {
            items
        }
    }

    /// Who drew it: "Ada", "Ada and Bo", "Ada, Bo, Cy and 2 others"; empty when unknown.
    pub fn by(&self) -> String {
        let a = &self.authors;
        match a.len() {
            0 => String::new(),
            1 => a[0].clone(),
            n if n <= NAMED => format!("{} and {}", a[..n - 1].join(", "), a[n - 1]),
            n => {
                let more = n - NAMED;
                let others = if more == 1 { "other" } else { "others" };
                format!("{} and {more} {others}", a[..NAMED].join(", "))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listing_is_read_newest_first_and_described_in_words() {
        let json = r#"{"checkpoints":[
            {"id":5,"epoch":1,"seq":3,"reason":"interval","authors":["Ada"],"items":1,"bytes":9},
            {"id":9,"epoch":1,"seq":7,"reason":"clear","authors":["Ada","Bo","Cy","Di","Ed"],"items":12,"bytes":99}
        ],"viewers":false}"#;
        let listing = parse(json).unwrap();
        assert!(!listing.viewers);
        let v = listing.versions;
        assert_eq!(v.iter().map(|v| v.id).collect::<Vec<_>>(), vec![9, 5]);
        assert_eq!(v[0].what(), "Before a Clear · 12 items");
        assert_eq!(v[1].what(), "1 item");
        assert_eq!(v[0].by(), "Ada, Bo, Cy and 2 others");
        assert_eq!(v[1].by(), "Ada");
        let two = Version {
            authors: vec!["Ada".into(), "Bo".into()],
            ..v[1].clone()
        };
        assert_eq!(two.by(), "Ada and Bo");
        assert!(parse(r#"{"checkpoints":[]}"#).unwrap().viewers);
        assert!(parse("{\"error\":\"nope\"}").is_err());
        assert!(parse("<html>").is_err());
    }
}
