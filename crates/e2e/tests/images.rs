//! Pictures across two nodes of a cluster (each test starts its own `redis-server` and two
//! `kokuban` nodes; Ada edits on node A, Bob views on node B). A picture Ada pastes or drops
//! is uploaded to the room, placed, and shown on Bob's canvas in its own colours; a late
//! joiner gets it from the room, it is still there after both nodes restart, and undo takes
//! it away. Screenshots are named `images-…`.

mod common;

use std::time::{Duration, Instant};

use common::{Browser, Cluster, Driver, prerequisites};
use serde_json::{Value, json};

const W: u32 = 1000;
const H: u32 = 860;

/// Makes a `w`×`h` PNG of one colour in the page and hands it to the app as a user would:
/// `paste` as a copied picture (a screenshot, say), `drop` as a file dropped at `(x, y)` on
/// the board.
const GIVE_PICTURE: &str = r#"
const [how, w, h, css, x, y] = arguments;
return (async () => {
const c = document.createElement('canvas');
c.width = w; c.height = h;
const g = c.getContext('2d');
g.fillStyle = css; g.fillRect(0, 0, w, h);
const blob = await new Promise(done => c.toBlob(done, 'image/png'));
const data = new DataTransfer();
data.items.add(new File([blob], 'picture.png', { type: 'image/png' }));
if (how === 'paste') {
  document.dispatchEvent(new ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true }));
} else {
  const board = document.getElementById('board');
  const at = { dataTransfer: data, clientX: x, clientY: y, bubbles: true, cancelable: true };
  board.dispatchEvent(new DragEvent('dragover', at));
  board.dispatchEvent(new DragEvent('drop', at));
}
return true;
})();
"#;

/// Pixels of `#board` in the CSS rectangle within 40 of the colour `[r, g, b]`.
const COLOURED: &str = r#"
const [x0, y0, x1, y1, rgb] = arguments;
const c = document.getElementById('board');
if (!c || c.width === 0) return 0;
const r = window.devicePixelRatio || 1;
const d = c.getContext('2d').getImageData(Math.round(x0 * r), Math.round(y0 * r),
  Math.max(1, Math.round((x1 - x0) * r)), Math.max(1, Math.round((y1 - y0) * r))).data;
let n = 0;
for (let i = 0; i < d.length; i += 4) {
  if (Math.abs(d[i] - rgb[0]) + Math.abs(d[i + 1] - rgb[1]) + Math.abs(d[i + 2] - rgb[2]) < 40) n++;
}
return Math.round(n / (r * r));
"#;

const RED: [u8; 3] = [220, 30, 40];
const BLUE: [u8; 3] = [30, 60, 220];
const GREEN: [u8; 3] = [30, 160, 60];

/// Where the pasted picture lands (200×120, centred on the pointer at (500, 400)), inset.
const PASTED: (u32, u32, u32, u32) = (410, 350, 590, 450);
/// Where the dropped picture lands (160×100, centred on (250, 200)), inset.
const DROPPED: (u32, u32, u32, u32) = (180, 160, 320, 240);

async fn give(tab: &Browser, how: &str, (w, h): (u32, u32), rgb: [u8; 3], at: (i64, i64)) {
    let css = format!("rgb({}, {}, {})", rgb[0], rgb[1], rgb[2]);
    let given = tab
        .js(GIVE_PICTURE, json!([how, w, h, css, at.0, at.1]))
        .await;
    assert_eq!(given, Value::Bool(true));
}

async fn coloured(tab: &Browser, rect: (u32, u32, u32, u32), rgb: [u8; 3]) -> u64 {
    tab.js(COLOURED, json!([rect.0, rect.1, rect.2, rect.3, rgb]))
        .await
        .as_u64()
        .unwrap_or(0)
}

/// Waits until `tab` shows the picture of colour `rgb` over at least 90 % of `rect` (or,
/// with `gone`, over none of it).
async fn wait_picture(
    tab: &Browser,
    what: &str,
    rect: (u32, u32, u32, u32),
    rgb: [u8; 3],
    gone: bool,
) {
    let area = u64::from((rect.2 - rect.0) * (rect.3 - rect.1));
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n = coloured(tab, rect, rgb).await;
        if (gone && n == 0) || (!gone && n >= area * 9 / 10) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {n} of {area} pixels of the picture's colour"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_picture_pasted_or_dropped_on_node_a_shows_on_node_b_for_late_joiners_and_after_a_restart()
 {
    let Some(_lock) = prerequisites().await else {
        return;
    };
    let mut cluster = Cluster::start().await;
    let driver = Driver::start().await;
    let (edit, view) = cluster.a.create_room().await;
    let b_url = format!("{}{view}", cluster.b.url());
    let a_url = format!("{}{edit}", cluster.a.url());
    let (ada, bob) = cluster.two_tabs(&driver, (W, H), &a_url, &b_url).await;

    // Ada pastes a red picture with the pointer at (500, 400): it lands centred there, at
    // its own size, on both tabs.
    ada.hover(500, 400).await;
    give(&ada, "paste", (200, 120), RED, (0, 0)).await;
    wait_picture(&ada, "the pasted picture on Ada's tab", PASTED, RED, false).await;
    wait_picture(&bob, "the pasted picture on node B", PASTED, RED, false).await;
    // Nothing of it outside its box.
    assert_eq!(coloured(&bob, (620, 350, 700, 450), RED).await, 0);

    // She drops a blue one at (250, 200).
    give(&ada, "drop", (160, 100), BLUE, (250, 200)).await;
    wait_picture(&bob, "the dropped picture on node B", DROPPED, BLUE, false).await;
    bob.screenshot("images-on-node-b").await;

    // A view-only tab cannot add one: its paste is not uploaded, nothing appears.
    give(&bob, "paste", (100, 100), BLUE, (0, 0)).await;

    // Carl opens the board on node B now: the room gives him both.
    let carl = driver.browser(W, H).await;
    carl.goto(&b_url).await;
    wait_picture(
        &carl,
        "the pasted picture for a late joiner",
        PASTED,
        RED,
        false,
    )
    .await;
    wait_picture(
        &carl,
        "the dropped picture for a late joiner",
        DROPPED,
        BLUE,
        false,
    )
    .await;
    carl.quit().await;

    // Both nodes restart; a new tab on node B still gets both pictures.
    cluster.a.stop().await;
    cluster.b.stop().await;
    cluster.a.start_again().await;
    cluster.b.start_again().await;
    let dan = driver.browser(W, H).await;
    dan.goto(&b_url).await;
    wait_picture(
        &dan,
        "the pasted picture after a restart",
        PASTED,
        RED,
        false,
    )
    .await;
    wait_picture(
        &dan,
        "the dropped picture after a restart",
        DROPPED,
        BLUE,
        false,
    )
    .await;
    dan.screenshot("images-after-restart").await;
    // Bob's paste as a viewer added nothing.
    assert_eq!(
        dan.js("return window.kokuban.strokeCount();", json!([]))
            .await,
        json!(2)
    );

    // Ada's tab reconnects; her undo takes the dropped picture away for everyone.
    ada.wait_status("connected").await;
    ada.press("[aria-label='Undo']").await;
    wait_picture(&dan, "the dropped picture undone", DROPPED, BLUE, true).await;
    wait_picture(&dan, "the pasted picture kept", PASTED, RED, false).await;

    // The menu offers "Add a picture…" to an editor, not to a viewer; a file picked there
    // lands where the pointer rests.
    ada.press("[aria-label='Menu: export, theme, shortcuts']")
        .await;
    assert_eq!(ada.count("[aria-label='Add a picture']").await, 1);
    ada.press("[aria-label='Menu: export, theme, shortcuts']")
        .await;
    dan.press("[aria-label='Menu: export, theme, shortcuts']")
        .await;
    assert_eq!(dan.count("[aria-label='Add a picture']").await, 0);
    let made = ada
        .js(
            "const c = document.createElement('canvas'); c.width = 120; c.height = 80; \
             const g = c.getContext('2d'); g.fillStyle = 'rgb(30, 160, 60)'; \
             g.fillRect(0, 0, 120, 80); return c.toDataURL('image/png').split(',')[1];",
            json!([]),
        )
        .await;
    let bytes = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        made.as_str().expect("a PNG as base64"),
    )
    .expect("base64");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("green.png");
    std::fs::write(&file, bytes).unwrap();
    ada.hover(750, 600).await;
    ada.pick_file("input.file-picker", &file).await;
    const PICKED: (u32, u32, u32, u32) = (700, 570, 800, 630);
    wait_picture(&dan, "the picked picture on node B", PICKED, GREEN, false).await;
}
