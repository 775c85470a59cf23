//! Resize and rotate handles across two nodes of a cluster (each test starts its own
//! `redis-server` and two `kokuban` nodes; Ada edits on node A, Bob views on node B). Ada
//! selects a filled rectangle, drags its corner handle and then its turn handle; Bob's canvas
//! shows it stretched, then turned, a late joiner gets it so from the room, and undo takes the
//! turn back. Screenshots are named `reshape-…`.

mod common;

use common::{Cluster, Driver, prerequisites};
use serde_json::json;

const W: u32 = 1000;
const H: u32 = 860;

fn area(r: (u32, u32, u32, u32)) -> u64 {
    u64::from((r.2 - r.0) * (r.3 - r.1))
}

/// Inside the rectangle as drawn, 100×60 from (300, 300).
const DRAWN: (u32, u32, u32, u32) = (310, 310, 390, 350);
/// Inside it once stretched to 200×120 (its top-left corner kept), outside it as drawn.
const STRETCHED: (u32, u32, u32, u32) = (420, 370, 490, 410);
/// Inside it once turned a quarter about its centre (400, 360): 120 wide, 200 tall.
const TURNED: (u32, u32, u32, u32) = (350, 430, 450, 450);
/// The right end of the stretched rectangle, outside the turned one.
const OLD_END: (u32, u32, u32, u32) = (470, 370, 495, 410);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rectangle_stretched_and_turned_by_its_handles_on_node_a_shows_so_on_node_b() {
    let Some(_lock) = prerequisites().await else {
        return;
    };
    let cluster = Cluster::start().await;
    let driver = Driver::start().await;
    let (edit, view) = cluster.a.create_room().await;
    let b_url = format!("{}{view}", cluster.b.url());
    let a_url = format!("{}{edit}", cluster.a.url());
    let (ada, bob) = cluster.two_tabs(&driver, (W, H), &a_url, &b_url).await;

    // A solid rectangle, so that its inside is ink.
    ada.press("[aria-label='Rectangle']").await;
    ada.press("button[aria-label='Fill, line and opacity']")
        .await;
    ada.press("[aria-label='Fill: solid']").await;
    ada.draw(&[(300, 300), (350, 330), (400, 360)]).await;
    bob.wait_ink("the rectangle on node B", DRAWN, area(DRAWN) * 9 / 10)
        .await;
    assert_eq!(
        bob.ink(STRETCHED.0, STRETCHED.1, STRETCHED.2, STRETCHED.3)
            .await,
        0
    );

    // Ada selects it and drags its bottom-right handle 100 px right and 60 down.
    ada.press("[aria-label='Select']").await;
    ada.click(350, 330, 1).await;
    ada.draw(&[(401, 361), (450, 390), (501, 421)]).await;
    ada.screenshot("reshape-stretched-a").await;
    bob.wait_ink(
        "the rectangle stretched on node B",
        STRETCHED,
        area(STRETCHED) * 9 / 10,
    )
    .await;
    bob.screenshot("reshape-stretched").await;

    // Then its turn handle, above the middle of its top edge, round to the right of its
    // centre: a quarter turn clockwise.
    ada.draw(&[(400, 272), (470, 290), (520, 360)]).await;
    bob.wait_ink(
        "the rectangle turned on node B",
        TURNED,
        area(TURNED) * 9 / 10,
    )
    .await;
    bob.wait_ink_below("the turned rectangle's old right end", OLD_END, 0)
        .await;
    bob.screenshot("reshape-turned").await;

    // Carl opens the board on node B: the room gives him the rectangle as it now is.
    let carl = driver.browser(W, H).await;
    carl.goto(&b_url).await;
    carl.wait_ink(
        "the turned rectangle for a late joiner",
        TURNED,
        area(TURNED) * 9 / 10,
    )
    .await;
    assert_eq!(
        carl.ink(OLD_END.0, OLD_END.1, OLD_END.2, OLD_END.3).await,
        0
    );
    carl.quit().await;

    // One undo takes the turn back, on Bob's tab too.
    ada.press("[aria-label='Undo']").await;
    bob.wait_ink(
        "the rectangle stretched again on node B",
        STRETCHED,
        area(STRETCHED) * 9 / 10,
    )
    .await;
    bob.wait_ink_below("the turn undone", TURNED, 0).await;
    let selected = ada
        .js("return window.kokuban.strokeCount();", json!([]))
        .await;
    assert_eq!(selected, json!(1));
}
