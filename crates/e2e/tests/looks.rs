//! Fill, line style and opacity across two nodes of a cluster (each test starts its own
//! `redis-server` and two `kokuban` nodes; Ada edits on node A, Bob views on node B). What
//! Ada picks in the "Fill, line and opacity" panel dresses her new shapes and her selection,
//! Bob's canvas shows it, undo takes it back, and a late joiner gets it from the room.
//! Screenshots are named `looks-…`.

mod common;

use common::{Browser, Cluster, Driver, prerequisites};
use serde_json::json;

const W: u32 = 1000;
const H: u32 = 860;

/// Inside the rectangle Ada draws, away from its outline.
const INSIDE: (u32, u32, u32, u32) = (350, 350, 550, 450);
/// A strip along its top edge, away from its corners.
const TOP_EDGE: (u32, u32, u32, u32) = (330, 290, 570, 310);

/// Opens the look panel (a pointer on the board closes it) and picks `choice` there.
async fn pick(tab: &Browser, choice: &str) {
    let open = "return document.querySelector(\"[aria-label='Fill, line and opacity'][aria-expanded]\")\
                ?.getAttribute('aria-expanded') === 'true';";
    if tab.js(open, json!([])).await != json!(true) {
        tab.press("button[aria-label='Fill, line and opacity']")
            .await;
    }
    tab.press(&format!("[aria-label='{choice}']")).await;
    tab.wait_for(
        "the choice shown as picked",
        "return !!document.querySelector(`[aria-label='${arguments[0]}'].active`);",
        json!([choice]),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filled_rectangle_restyled_dashed_on_one_node_shows_so_on_the_other_and_undo_reverts_it()
{
    let Some(_lock) = prerequisites().await else {
        return;
    };
    let cluster = Cluster::start().await;
    let driver = Driver::start().await;
    let (edit, view) = cluster.a.create_room().await;
    let b_url = format!("{}{view}", cluster.b.url());
    let a_url = format!("{}{edit}", cluster.a.url());
    let (ada, bob) = cluster.two_tabs(&driver, (W, H), &a_url, &b_url).await;
    let area = |r: (u32, u32, u32, u32)| u64::from((r.2 - r.0) * (r.3 - r.1));

    // Ada picks a solid fill, then draws a rectangle: Bob sees it filled.
    ada.press("[aria-label='Rectangle']").await;
    pick(&ada, "Fill: solid").await;
    ada.draw(&[(300, 300), (420, 380), (600, 500)]).await;
    bob.wait_ink(
        "the rectangle filled on node B",
        INSIDE,
        area(INSIDE) * 9 / 10,
    )
    .await;
    bob.screenshot("looks-filled").await;

    // Ada selects it, takes the fill away and makes its line dashed.
    ada.ctrl("a").await;
    ada.wait_for(
        "the selection bar",
        "return !!document.querySelector('[aria-label=\"Selection\"]');",
        json!([]),
    )
    .await;
    pick(&ada, "Fill: none").await;
    bob.wait_ink_below("the fill gone on node B", INSIDE, 0)
        .await;
    let solid = bob
        .ink(TOP_EDGE.0, TOP_EDGE.1, TOP_EDGE.2, TOP_EDGE.3)
        .await;
    assert!(solid > 400, "the outline along the top: {solid} ink pixels");
    pick(&ada, "Line: dashed").await;
    ada.screenshot("looks-panel").await;
    bob.wait_ink_below("the outline dashed on node B", TOP_EDGE, solid * 4 / 5)
        .await;
    let dashed = bob
        .ink(TOP_EDGE.0, TOP_EDGE.1, TOP_EDGE.2, TOP_EDGE.3)
        .await;
    assert!(
        dashed > solid / 4,
        "dashes, not nothing: {dashed} of {solid}"
    );
    bob.screenshot("looks-dashed").await;

    // Carl opens the board on node B now: he gets the look from the room.
    let carl = driver.browser(W, H).await;
    carl.goto(&b_url).await;
    carl.wait_ink("the rectangle on Carl's tab", TOP_EDGE, dashed / 2)
        .await;
    let late = carl
        .ink(TOP_EDGE.0, TOP_EDGE.1, TOP_EDGE.2, TOP_EDGE.3)
        .await;
    assert!(
        late < solid * 4 / 5,
        "dashed for a late joiner too: {late} of {solid}"
    );
    assert_eq!(carl.ink(INSIDE.0, INSIDE.1, INSIDE.2, INSIDE.3).await, 0);

    // Two undos: the line solid again, then the fill back, on Bob's tab.
    ada.press("[aria-label='Undo']").await;
    ada.press("[aria-label='Undo']").await;
    bob.wait_ink("the fill back on node B", INSIDE, area(INSIDE) * 9 / 10)
        .await;
    bob.wait_ink("the line solid again on node B", TOP_EDGE, solid * 9 / 10)
        .await;

    // A hachure shades the inside with lines: ink, but far from all of it.
    pick(&ada, "Fill: hachure").await;
    bob.wait_ink_below("the hachure on node B", INSIDE, area(INSIDE) * 3 / 4)
        .await;
    let shaded = bob.ink(INSIDE.0, INSIDE.1, INSIDE.2, INSIDE.3).await;
    assert!(
        shaded > area(INSIDE) / 10,
        "lines across the inside: {shaded} of {} pixels",
        area(INSIDE)
    );
    bob.screenshot("looks-hachure").await;
}
