//! The app as someone coming from Excalidraw or tldraw tries it, in a real browser: the wheel
//! pans and Ctrl+wheel zooms; a phone shows undo and the colours without scrolling; popovers
//! close on Esc, a click elsewhere and opening another; copy, paste, duplicate and arrow-key
//! nudges of a selection reach a tab on the other node of a cluster, and a copy pastes into
//! another board through the system clipboard; `?` lists the shortcuts;
//! a mistyped address gets a page, and a link without a token says so for good. Screenshots
//! are named `ui-…`.

mod common;

use std::time::Duration;

use common::{Browser, Cluster, Driver, Node, keys, member_of, prerequisites, wave};
use futures_util::StreamExt;
use serde_json::json;

const W: u32 = 1000;
const H: u32 = 760;

/// The zoom percentage the zoom bar shows.
async fn zoom(b: &Browser) -> String {
    b.text(".zoom .pct").await
}

/// How many strokes and text items the tab holds.
async fn strokes(b: &Browser) -> u64 {
    b.js("return window.kokuban.strokeCount();", json!([]))
        .await
        .as_u64()
        .unwrap_or(0)
}

/// Waits until the open popovers are exactly `labels` (their `aria-label`s).
async fn open(b: &Browser, labels: serde_json::Value) {
    b.wait_for(
        &format!("the open popovers to be {labels}"),
        "return JSON.stringify([...document.querySelectorAll('.popover')]
            .map(p => p.getAttribute('aria-label'))) === JSON.stringify(arguments[0]);",
        json!([labels]),
    )
    .await;
}

/// Waits until the element matching `css` is usable on screen (see [`ON_SCREEN`]).
async fn usable(b: &Browser, css: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got = b.js(ON_SCREEN, json!([css])).await;
        if got == json!("ok") {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{css} is not usable: {got}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Opens a new room of `node` in a tab of `width × height` and waits until it is connected.
async fn room(node: &Node, driver: &Driver, (width, height): (u32, u32)) -> Browser {
    let (edit, _) = node.create_room().await;
    let b = driver.browser(width.max(500), height).await;
    if width < 500 {
        // Headless Chromium's windows are 500 px wide at least: a phone is emulated.
        b.emulate_phone(width, height).await;
    }
    b.goto(&format!("{}{edit}", node.url())).await;
    b.wait_status("connected").await;
    b
}

/// Opens a room with one tab on each node of `cluster`: Ada on A, Bob on B.
async fn two_tabs(cluster: &Cluster, driver: &Driver) -> (Browser, Browser) {
    let (edit, _) = cluster.a.create_room().await;
    cluster
        .two_tabs(
            driver,
            (W, H),
            &format!("{}{edit}", cluster.a.url()),
            &format!("{}{edit}", cluster.b.url()),
        )
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wheel_pans_and_ctrl_wheel_zooms() {
    let Some(_lock) = prerequisites().await else {
        return;
    };
    let node = Node::start().await;
    let driver = Driver::start().await;
    let b = room(&node, &driver, (W, H)).await;
    let drawn = (300, 300, 700, 400);
    let above = (300, 100, 700, 200);
    b.draw(&wave(320, 680, 350)).await;
    b.wait_ink("the stroke", drawn, 200).await;
    assert_eq!(b.ink(above.0, above.1, above.2, above.3).await, 0);

    // Scrolling down by 200 px moves the drawing up by as much, as a page would; no zoom.
    b.wheel((500, 500), (0, 200), false).await;
    b.wait_ink("the stroke scrolled up", above, 200).await;
    b.wait_ink("nothing left where it was", drawn, 0).await;
    assert_eq!(zoom(&b).await, "100%");
    b.screenshot("ui-wheel-panned").await;

    // Ctrl+wheel (and a trackpad pinch, which arrives as one) zooms in around the pointer.
    let before = b.ink(above.0, above.1, above.2, above.3).await;
    b.wheel((500, 150), (0, -100), true).await;
    b.wait_for(
        "the zoom to grow",
        "const p = document.querySelector('.zoom .pct'); return !!p && parseInt(p.textContent) > 100;",
        json!([]),
    )
    .await;
    let wide = (200, 60, 800, 240);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while b.ink(wide.0, wide.1, wide.2, wide.3).await <= before {
        assert!(
            std::time::Instant::now() < deadline,
            "the zoomed stroke did not grow"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    b.screenshot("ui-ctrl-wheel-zoomed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_shows_undo_and_the_colours_without_scrolling() {
    let Some(_lock) = prerequisites().await else {
        return;
    };
    let node = Node::start().await;
    let driver = Driver::start().await;
    let b = room(&node, &driver, (390, 844)).await;
    assert_eq!(
        b.js("return window.innerWidth;", json!([])).await,
        json!(390)
    );
    // Nothing is wider than the screen, so nothing hides behind a scrollbar.
    assert_eq!(
        b.js(
            "return document.documentElement.scrollWidth <= window.innerWidth;",
            json!([])
        )
        .await,
        json!(true)
    );
    // Undo, redo, the style toggle and the tools are on screen, unobstructed, and big
    // enough for a finger; no two bars overlap.
    for css in [
        "[aria-label=Undo]",
        "[aria-label=Redo]",
        "[aria-label='Ink colour and size']",
        "[data-tool=pen]",
        "[data-tool=select]",
        "[data-tool=text]",
        "[aria-label=Shapes]",
        "[aria-label='Share this board']",
        "[aria-label='Menu: export, theme, shortcuts']",
        ".logo",
        ".zoom .pct",
    ] {
        assert_eq!(
            b.js(ON_SCREEN, json!([css])).await,
            json!("ok"),
            "{css} is not usable"
        );
    }
    assert_eq!(b.js(BARS_APART, json!([])).await, json!("ok"));
    b.screenshot("ui-phone").await;

    // The colours open from the style toggle, each on screen and big enough; choosing one
    // makes it the ink.
    b.click_on("[aria-label='Ink colour and size']").await;
    for color in [
        "Ink", "Red", "Orange", "Yellow", "Green", "Blue", "Violet", "Pink",
    ] {
        usable(&b, &format!(".swatch[data-color={color}]")).await;
    }
    usable(&b, "[aria-label='Stroke size XL']").await;
    b.screenshot("ui-phone-colours").await;
    b.click_on(".swatch[data-color=Red]").await;
    b.wait_for(
        "red to be the ink",
        "const s = document.querySelector('.swatch[data-color=Red]'); return !!s && s.classList.contains('active');",
        json!([]),
    )
    .await;
    // The shapes open from their own toggle, and close the colours.
    b.click_on("[aria-label=Shapes]").await;
    assert_eq!(
        b.js(ON_SCREEN, json!(["[data-tool=ellipse]"])).await,
        json!("ok")
    );
    assert_eq!(
        b.js(ON_SCREEN, json!([".swatch[data-color=Red]"])).await,
        json!("hidden")
    );
    b.screenshot("ui-phone-shapes").await;

    // Every control says what it does.
    assert_eq!(b.js(UNNAMED_CONTROLS, json!([])).await, json!([]));

    // A tablet held upright: the tools fit in one row, the colours fold.
    b.chord(&[], keys::ESCAPE).await;
    b.emulate_phone(768, 1024).await;
    for css in [
        "[aria-label=Undo]",
        "[data-tool=ellipse]",
        "[aria-label='Ink colour and size']",
    ] {
        usable(&b, css).await;
    }
    assert_eq!(b.js(BARS_APART, json!([])).await, json!("ok"));
    b.screenshot("ui-tablet").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn popovers_close_on_escape_a_click_elsewhere_and_opening_another() {
    let Some(_lock) = prerequisites().await else {
        return;
    };
    let node = Node::start().await;
    let driver = Driver::start().await;
    let b = room(&node, &driver, (W, H)).await;

    b.click_on("[aria-label='Menu: export, theme, shortcuts']")
        .await;
    open(&b, json!(["Menu"])).await;
    assert_eq!(b.js(UNNAMED_CONTROLS, json!([])).await, json!([]));
    // Opening the profile closes the menu: never two at once.
    b.click_on(".avatar.me").await;
    open(&b, json!(["Your name and colour"])).await;
    assert_eq!(b.js(UNNAMED_CONTROLS, json!([])).await, json!([]));
    b.screenshot("ui-profile-open").await;
    b.chord(&[], keys::ESCAPE).await;
    open(&b, json!([])).await;

    // Drawing on the board is a click elsewhere.
    b.click_on("[aria-label='Share this board']").await;
    open(&b, json!(["Share this board"])).await;
    assert_eq!(b.js(UNNAMED_CONTROLS, json!([])).await, json!([]));
    b.draw(&wave(300, 600, 400)).await;
    open(&b, json!([])).await;

    // A choice closes its menu.
    b.click_on("[aria-label='Menu: export, theme, shortcuts']")
        .await;
    b.click_on("[role=menuitem][title^='Switch between']").await;
    open(&b, json!([])).await;
    b.wait_for(
        "the dark theme",
        "return document.documentElement.dataset.theme === 'dark';",
        json!([]),
    )
    .await;
    // The profile's name applies as it is typed, and shows on our avatar at once.
    b.click_on(".avatar.me").await;
    b.js(
        "const i = document.querySelector('.profile input'); i.focus(); i.select();",
        json!([]),
    )
    .await;
    b.type_keys("Zed Quill").await;
    b.chord(&[], "\u{E007}").await;
    open(&b, json!([])).await;
    b.wait_for(
        "the avatar to show the new initials",
        "const a = document.querySelector('.avatar.me'); return !!a && a.textContent === 'ZQ';",
        json!([]),
    )
    .await;
    b.screenshot("ui-popovers-closed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_paste_and_duplicate_reach_the_other_node() {
    let Some(_lock) = prerequisites().await else {
        return;
    };
    let cluster = Cluster::start().await;
    let driver = Driver::start().await;
    let (ada, bob) = two_tabs(&cluster, &driver).await;
    let original = (150, 150, 450, 250);
    let target = (550, 450, 850, 550);
    ada.draw(&wave(200, 400, 200)).await;
    bob.wait_ink("Ada's stroke on Bob's canvas", original, 150)
        .await;
    assert_eq!(bob.ink(target.0, target.1, target.2, target.3).await, 0);

    // Select it, copy it, point elsewhere and paste: a new stroke there, for Bob too.
    ada.ctrl("a").await;
    ada.ctrl("c").await;
    ada.hover(700, 500).await;
    ada.ctrl("v").await;
    bob.wait_ink("the pasted copy on Bob's canvas", target, 150)
        .await;
    bob.wait_for(
        "two strokes on Bob's board",
        "return window.kokuban.strokeCount() === 2;",
        json!([]),
    )
    .await;
    let once = bob.ink(target.0, target.1, target.2, target.3).await;
    bob.screenshot("ui-pasted-on-other-node").await;

    // Ctrl+D duplicates the pasted (selected) copy, a little down and right.
    ada.ctrl("d").await;
    bob.wait_for(
        "three strokes on Bob's board",
        "return window.kokuban.strokeCount() === 3;",
        json!([]),
    )
    .await;
    let below = (550, 520, 870, 580);
    bob.wait_ink("the duplicate below the copy", below, once / 2)
        .await;
    assert_eq!(strokes(&ada).await, 3);
    bob.screenshot("ui-duplicated-on-other-node").await;

    // One undo takes the duplicate back, for Bob too.
    ada.ctrl("z").await;
    bob.wait_for(
        "the duplicate gone from Bob's board",
        "return window.kokuban.strokeCount() === 2;",
        json!([]),
    )
    .await;

    // What Ada copied pastes into another board, in another tab, through the system clipboard.
    let (other, _) = cluster.b.create_room().await;
    ada.new_tab().await;
    ada.goto(&format!("{}{other}", cluster.a.url())).await;
    ada.wait_status("connected").await;
    assert_eq!(strokes(&ada).await, 0);
    ada.hover(500, 300).await;
    ada.ctrl("v").await;
    ada.wait_ink(
        "the stroke pasted into the other board",
        (350, 250, 650, 350),
        150,
    )
    .await;
    assert_eq!(strokes(&ada).await, 1);
    ada.screenshot("ui-pasted-into-another-board").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrow_keys_nudge_the_selection_on_the_other_node() {
    let Some(_lock) = prerequisites().await else {
        return;
    };
    let cluster = Cluster::start().await;
    let driver = Driver::start().await;
    let (ada, bob) = two_tabs(&cluster, &driver).await;
    // The wave spans y 280..320 (and its width); five Shift+↓ move it 50 px down.
    let was = (300, 270, 700, 326);
    let moved = (300, 326, 700, 380);
    ada.draw(&wave(320, 680, 300)).await;
    bob.wait_ink("Ada's stroke on Bob's canvas", was, 200).await;
    assert_eq!(bob.ink(moved.0, moved.1, moved.2, moved.3).await, 0);

    ada.ctrl("a").await;
    for _ in 0..5 {
        ada.chord(&[keys::SHIFT], keys::DOWN).await;
    }
    bob.wait_ink("the nudged stroke on Bob's canvas", moved, 200)
        .await;
    bob.wait_ink("nothing left where it was", was, 0).await;
    bob.screenshot("ui-nudged-on-other-node").await;
    // A plain arrow moves it one pixel: still where it went, not back.
    ada.chord(&[], keys::RIGHT).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(bob.ink(was.0, was.1, was.2, was.3).await, 0);

    // Bob only ever received: his menu still knows there is something to clear.
    bob.click_on("[aria-label='Menu: export, theme, shortcuts']")
        .await;
    bob.wait_for(
        "Clear board in Bob's menu",
        "return !!document.querySelector('[role=menuitem].danger');",
        json!([]),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn question_mark_lists_every_shortcut() {
    let Some(_lock) = prerequisites().await else {
        return;
    };
    let node = Node::start().await;
    let driver = Driver::start().await;
    let b = room(&node, &driver, (W, H)).await;
    assert_eq!(b.count("#shortcuts").await, 0);
    b.type_keys("?").await;
    b.wait_for(
        "the shortcut sheet",
        "return !!document.getElementById('shortcuts');",
        json!([]),
    )
    .await;
    let sheet = b.text("#shortcuts").await;
    for line in [
        "Undo",
        "Duplicate the selection",
        "Nudge the selection by 10 px",
        "Paste at the pointer",
        "Zoom to fit the drawing",
        "Ellipse",
    ] {
        assert!(sheet.contains(line), "the sheet lacks {line}: {sheet}");
    }
    assert!(b.count("#shortcuts dt").await >= 30);
    assert_eq!(b.js(UNNAMED_CONTROLS, json!([])).await, json!([]));
    b.screenshot("ui-shortcut-sheet").await;
    b.chord(&[], keys::ESCAPE).await;
    assert_eq!(b.count("#shortcuts").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mistyped_address_gets_a_page_and_the_api_keeps_json() {
    let Some(_lock) = prerequisites().await else {
        return;
    };
    let node = Node::start().await;
    let driver = Driver::start().await;
    let b = driver.browser(W, H).await;
    b.goto(&format!("{}/rooms/nope", node.url())).await;
    assert_eq!(
        b.js("return document.contentType;", json!([])).await,
        json!("text/html")
    );
    assert_eq!(b.text("h1").await, "Nothing here");
    assert_eq!(
        b.js(
            "return document.querySelector('a').getAttribute('href');",
            json!([])
        )
        .await,
        json!("/")
    );
    b.screenshot("ui-not-found").await;
    // The API's own misses stay JSON, even for a browser asking for a page.
    b.goto(&format!("{}/api/nope", node.url())).await;
    assert_eq!(
        b.js("return document.contentType;", json!([])).await,
        json!("application/json")
    );
    assert!(b.text("body").await.contains("\"error\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_without_a_token_says_so_for_good_and_offers_a_new_board() {
    let Some(_lock) = prerequisites().await else {
        return;
    };
    let node = Node::start().await;
    let driver = Driver::start().await;
    let (edit, _) = node.create_room().await;
    let bare = edit.split('#').next().unwrap().to_string();
    let b = driver.browser(W, H).await;
    b.goto(&format!("{}{bare}", node.url())).await;
    b.wait_status("closed").await;
    let says = "const s = document.getElementById('banner'); return !!s && s.textContent.includes('no key to the board');";
    assert_eq!(b.js(says, json!([])).await, json!(true));
    // No tools to draw with, on a board that cannot be reached.
    assert_eq!(b.count("[data-tool]").await, 0);
    // Long after a toast would have gone, it still says so.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(b.js(says, json!([])).await, json!(true));
    assert_eq!(b.status().await, "closed");
    b.screenshot("ui-no-token").await;

    // "New board" makes one and opens it, ready to draw.
    b.click_on("#new-board").await;
    b.wait_status("connected").await;
    assert_eq!(b.count("[data-tool]").await, 11);
    assert!(
        b.js("return location.hash;", json!([]))
            .await
            .as_str()
            .unwrap()
            .starts_with("#edit=")
    );
}

/// "ok" if the element matching `arguments[0]` is inside the viewport, is what a tap at its
/// centre reaches, and is at least 40 × 40 CSS pixels; otherwise what is wrong.
const ON_SCREEN: &str = r#"
const e = document.querySelector(arguments[0]);
if (!e) return 'missing';
const r = e.getBoundingClientRect();
if (r.width === 0 || r.height === 0) return 'hidden';
if (r.left < 0 || r.top < 0 || r.right > innerWidth || r.bottom > innerHeight)
  return `off screen: ${r.left},${r.top},${r.right},${r.bottom}`;
if (r.width < 40 || r.height < 40) return `too small: ${r.width}x${r.height}`;
const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
if (!hit || !(hit === e || e.contains(hit))) return `covered by ${hit && hit.outerHTML.slice(0, 80)}`;
return 'ok';
"#;

/// "ok" if the fixed bars (top corners, toolbar, zoom) do not overlap each other.
const BARS_APART: &str = r#"
const bars = [...document.querySelectorAll('.bar')].filter(b => b.getBoundingClientRect().width > 0);
for (const a of bars) for (const b of bars) {
  if (a === b) continue;
  const r = a.getBoundingClientRect(), s = b.getBoundingClientRect();
  if (r.left < s.right && s.left < r.right && r.top < s.bottom && s.top < r.bottom)
    return `${a.className} overlaps ${b.className}`;
}
return 'ok';
"#;

/// The controls without an accessible name (`aria-label` or `title`), as HTML snippets.
const UNNAMED_CONTROLS: &str = r#"
return [...document.querySelectorAll('button, a, input, textarea, select, [role=button]')]
  .filter(e => !(e.getAttribute('aria-label') || '').trim() && !(e.getAttribute('title') || '').trim())
  .map(e => e.outerHTML.slice(0, 80));
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resetting_the_links_closes_the_old_ones_with_an_explanation_and_keeps_the_resetter() {
    let Some(_lock) = prerequisites().await else {
        return;
    };
    let node = Node::start().await;
    let driver = Driver::start().await;
    let (edit, _) = node.create_room().await;
    let old = format!("{}{edit}", node.url());
    let ada = driver.browser(W, H).await;
    ada.goto(&old).await;
    ada.wait_status("connected").await;
    let bob = driver.browser(W, H).await;
    bob.goto(&old).await;
    bob.wait_status("connected").await;

    // Ada resets the links from the share menu, and confirms.
    ada.js("window.confirm = () => true;", json!([])).await;
    ada.click_on("[aria-label='Share this board']").await;
    open(&ada, json!(["Share this board"])).await;
    ada.click_on("[aria-label='Reset links']").await;
    let moved = "return location.hash.startsWith('#edit=') && location.href !== arguments[0];";
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut said = Vec::new();
    while ada.js(moved, json!([old])).await != json!(true) {
        let page = ada.js("return document.body.innerText;", json!([])).await;
        if said.last() != Some(&page) {
            said.push(page);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the address still holds the old link; the page said: {said:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The menu shows the new links; her tab goes on with them.
    open(&ada, json!(["Share this board"])).await;
    ada.wait_status("connected").await;
    let new = ada.js("return location.href;", json!([])).await;
    let new = new.as_str().unwrap().to_owned();

    // Bob's tab says why it was closed, for good.
    bob.wait_status("closed").await;
    let says = "const s = document.getElementById('banner'); return !!s && s.textContent.includes('link was reset');";
    assert_eq!(bob.js(says, json!([])).await, json!(true));
    bob.screenshot("ui-links-reset").await;

    // The old link no longer opens the board; the new one does.
    bob.goto(&format!("{}/", node.url())).await;
    bob.goto(&old).await;
    bob.wait_status("closed").await;
    // (Through another page: a change of the fragment alone would not load the board anew.)
    bob.goto(&format!("{}/", node.url())).await;
    bob.goto(&new).await;
    bob.wait_status("connected").await;
    // Esc closes the menu, so that the next press draws.
    ada.chord(&[], keys::ESCAPE).await;
    open(&ada, json!([])).await;
    ada.draw(&wave(200, 400, 300)).await;
    bob.wait_ink("Ada's stroke after the reset", (150, 250, 450, 350), 50)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_landing_page_lists_the_boards_this_browser_opened_and_forgets_one_on_request() {
    let Some(_lock) = prerequisites().await else {
        return;
    };
    let node = Node::start().await;
    let driver = Driver::start().await;
    let (first, _) = node.create_room().await;
    let (second, _) = node.create_room().await;
    let room_of = |link: &str| {
        link.trim_start_matches("/r/")
            .split('#')
            .next()
            .unwrap()
            .to_string()
    };
    let b = driver.browser(W, H).await;
    for link in [&first, &second] {
        b.goto(&format!("{}{link}", node.url())).await;
        b.wait_status("connected").await;
        if link == &first {
            // Something drawn on the first board, so that it is pictured in the list.
            b.draw(&wave(300, 700, 300)).await;
            b.wait_ink("the stroke", (250, 250, 750, 350), 50).await;
        }
    }
    b.goto(&format!("{}/", node.url())).await;
    let listed = "return [...document.querySelectorAll('.recent li a')]
        .map(a => a.textContent).join() === arguments[0];";
    b.wait_for(
        "both boards, newest first",
        listed,
        json!([format!("{},{}", room_of(&second), room_of(&first))]),
    )
    .await;
    // The drawn board has its picture beside it; the empty one has none.
    let pictured = "return [...document.querySelectorAll('.recent li')]
        .map(li => li.querySelector('img.thumb')?.src.startsWith('data:image/') ?? false);";
    assert_eq!(b.js(pictured, json!([])).await, json!([false, true]));
    b.screenshot("ui-recent-boards").await;

    // Forgetting one leaves the other, also after a reload.
    b.click_on(&format!(
        "[aria-label='Remove board {} from the list']",
        room_of(&second)
    ))
    .await;
    b.goto(&format!("{}/", node.url())).await;
    b.wait_for("only the first board", listed, json!([room_of(&first)]))
        .await;
    // Its entry opens the board again.
    b.click_on(".recent li a").await;
    b.wait_status("connected").await;
}

/// Members named `Member 1` … `Member n` join the room of `edit` (a path with its token) over
/// the protocol and stay, reading whatever comes, until the returned tasks are dropped.
async fn crowd(node: &Node, edit: &str, n: usize) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    for i in 1..=n {
        let mut ws = member_of(node, edit, i).await;
        tasks.push(tokio::spawn(async move {
            while let Some(Ok(_)) = ws.next().await {}
        }));
    }
    tasks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crowded_room_lists_everyone_behind_plus_n_and_follows_from_the_list() {
    let Some(_lock) = prerequisites().await else {
        return;
    };
    let node = Node::start().await;
    let driver = Driver::start().await;
    let (edit, _) = node.create_room().await;
    let crowd = crowd(&node, &edit, 40).await;
    let b = driver.browser(W, H).await;
    b.goto(&format!("{}{edit}", node.url())).await;
    b.wait_status("connected").await;

    // Us and two others as avatars; the other 38 behind one button.
    b.wait_for(
        "the avatars to collapse to +38",
        "const more = document.querySelector('.avatar.more');
         return document.querySelectorAll('.presence > .avatar').length === 3
             && more !== null && more.textContent.trim() === '+38';",
        json!([]),
    )
    .await;
    b.press("[aria-label='38 more: everyone in this board']")
        .await;
    open(&b, json!(["Everyone in this board"])).await;
    assert_eq!(b.count(".members li.member").await, 41);
    assert_eq!(b.text(".members .members-count").await, "41 here");
    b.screenshot("ui-crowded-room-list").await;

    // Following someone from the list: the list closes and the badge says who.
    b.press(".members [aria-label='Follow Member 37']").await;
    open(&b, json!([])).await;
    b.wait_for(
        "the following badge",
        "const b = document.querySelector('.badge.following');
         return b !== null && b.textContent.trim() !== '';",
        json!([]),
    )
    .await;
    assert_eq!(
        b.text(".badge.following").await,
        "Following Member 37 — Esc to stop"
    );
    b.quit().await;
    for member in crowd {
        member.abort();
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next message from the server (its WebSocket fragments already joined), undecoded.
async fn next_frame(ws: &mut Ws) -> Vec<u8> {
    use tokio_tungstenite::tungstenite::Message;
    loop {
        let next = tokio::time::timeout(common::TIMEOUT, ws.next()).await;
        match next.expect("a message in time") {
            Some(Ok(Message::Binary(b))) => return b.to_vec(),
            Some(Ok(_)) => {}
            other => panic!("the connection ended: {other:?}"),
        }
    }
}

/// What a member joining with `ws` was sent before it could draw: the `BoardPart` frames, and
/// the Welcome's size in bytes.
async fn welcome_of(ws: &mut Ws) -> (usize, usize) {
    use kokuban_protocol::{ServerMsg, decode_server};
    let mut parts = 0;
    loop {
        let frame = next_frame(ws).await;
        match decode_server(&frame).expect("a server message") {
            ServerMsg::BoardPart(_) => parts += 1,
            ServerMsg::Welcome(_) => return (parts, frame.len()),
            _ => {}
        }
    }
}

/// Draws strokes `strokes` (numbered from the first on the board) of `points` points each
/// through the member `ws` (after its Welcome), in batches of the most points a batch may hold, and waits until the server has
/// acknowledged every op.
async fn draw_long_strokes(
    ws: &mut Ws,
    sent: &mut u64,
    strokes: std::ops::Range<usize>,
    points: u32,
) {
    use futures_util::SinkExt;
    use kokuban_protocol::limits::MAX_POINTS_PER_BATCH;
    use kokuban_protocol::{
        ClientMsg, Color, Op, Point, Points, ServerMsg, StrokeId, StrokePoints, Submit, Tool,
        Width, decode_server, encode_client,
    };
    use tokio_tungstenite::tungstenite::Message;
    let first = *sent;
    for s in strokes {
        let id = StrokeId(uuid::Uuid::new_v4());
        // Strokes side by side in rows of twelve, each a scribble 120 px wide and 512 px
        // long going down.
        let (column, row) = ((s % 12) as f64, (s / 12) as f64);
        let mut at = Point::from_px(column * 160.0, row * 560.0, 0.5).unwrap();
        let mut ops = vec![Op::StrokeBegin {
            id,
            tool: Tool::Pen,
            color: Color::rgb(30, 30, 30),
            width: Width::from_px(8.0),
            first: at,
        }];
        let mut start = 1;
        while start < points {
            let count = (points - start).min(MAX_POINTS_PER_BATCH as u32);
            let batch = (0..count)
                .map(|i| {
                    // Back and forth across, creeping down, as a long scribble goes.
                    at = at.offset(if i % 64 < 32 { 30 } else { -30 }, 1);
                    at
                })
                .collect();
            let batch = Points::new(batch).unwrap();
            ops.push(Op::StrokePoints(
                StrokePoints::new(id, start, batch).unwrap(),
            ));
            start += count;
        }
        ops.push(Op::StrokeEnd { id });
        for op in ops {
            *sent += 1;
            let msg = encode_client(&ClientMsg::Op(Submit { n: *sent, op }));
            ws.send(Message::Binary(msg.into())).await.unwrap();
        }
    }
    let mut acked = 0;
    while acked < *sent - first {
        match decode_server(&next_frame(ws).await).expect("a server message") {
            ServerMsg::Ack(_) | ServerMsg::Acked(_) => acked += 1,
            ServerMsg::Error(e) => panic!("an op was refused: {e:?}"),
            _ => {}
        }
    }
}

/// A board too large for one WebSocket frame opens whole in a tab: first while all of it is
/// still the log after an empty snapshot (a Welcome of some hundred kilobytes, sent in
/// fragments), then once the room has folded it into a snapshot sent in parts before the
/// Welcome, for a tab opened later and for the one that watched it grow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_board_opens_whole_whether_it_comes_in_one_welcome_or_in_parts() {
    let Some(_lock) = prerequisites().await else {
        return;
    };
    let node = Node::start_compacting_after(256 * 1024).await;
    let (edit, _) = node.create_room().await;
    let mut author = member_of(&node, &edit, 0).await;
    welcome_of(&mut author).await;
    let mut sent = 0;

    // About 150 KB of strokes: still the log, under the compaction threshold.
    draw_long_strokes(&mut author, &mut sent, 0..12, 4096).await;
    let mut probe = member_of(&node, &edit, 1).await;
    let (parts, welcome) = welcome_of(&mut probe).await;
    assert_eq!(parts, 0, "a board that is all log comes in the Welcome");
    assert!(
        welcome > 32 * 1024,
        "the Welcome ({welcome} bytes) is several fragments"
    );
    drop(probe);
    let driver = Driver::start().await;
    let first = driver.browser(W, H).await;
    first.goto(&format!("{}{edit}", node.url())).await;
    first
        .wait_for(
            "the 12 strokes of the board",
            "return !!window.kokuban && window.kokuban.strokeCount() === 12;",
            json!([]),
        )
        .await;

    // Three times as much again: the room folds its log into a snapshot.
    draw_long_strokes(&mut author, &mut sent, 12..48, 4096).await;
    let mut probe = member_of(&node, &edit, 2).await;
    let (parts, _) = welcome_of(&mut probe).await;
    assert!(parts >= 2, "a large snapshot comes in parts ({parts})");
    drop(probe);
    let second = driver.browser(W, H).await;
    second.goto(&format!("{}{edit}", node.url())).await;
    for (tab, who) in [
        (&second, "the tab opened now"),
        (&first, "the tab that watched"),
    ] {
        tab.wait_for(
            &format!("all 48 strokes on {who}"),
            "return !!window.kokuban && window.kokuban.strokeCount() === 48;",
            json!([]),
        )
        .await;
    }
    // And on screen: zoomed to fit, the strokes ink the canvas of both tabs, about 230,000
    // pixels when all are drawn (a large board is drawn over a few frames).
    for (tab, who) in [
        (&second, "the tab opened now"),
        (&first, "the tab that watched"),
    ] {
        tab.press("[title^='Zoom to fit']").await;
        let whole = format!("the whole board drawn on {who}");
        tab.wait_ink(&whole, (0, 60, W, H - 80), 160_000).await;
    }
    second.screenshot("ui-large-board").await;
    first.quit().await;
    second.quit().await;
}
