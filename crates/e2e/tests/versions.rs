//! Versions of a board, as a team uses them across two nodes of a cluster (each test starts
//! its own `redis-server` and two `kokuban` nodes, and puts Ada's tab on node A and the other
//! on node B). A board cleared by mistake is found in the History panel by anyone with a
//! link, shown read-only in the canvas, and brought back for everyone by an editor, in one
//! step that undo takes back. Screenshots are named `versions-…`.

mod common;

use common::{Browser, Cluster, Driver, prerequisites};
use serde_json::json;

const W: u32 = 1000;
const H: u32 = 860;

/// Opens the History panel from the menu.
async fn open_history(tab: &Browser) {
    tab.choose_from_menu("History").await;
}

/// Opens the History panel from the menu and shows its newest version.
async fn show_newest_version(tab: &Browser) {
    open_history(tab).await;
    tab.wait_for(
        "a version listed",
        "return !!document.querySelector(\"#history [aria-label^='Show the version of']\");",
        json!([]),
    )
    .await;
    tab.press("#history [aria-label^='Show the version of']")
        .await;
    tab.wait_for(
        "the version shown",
        "return !!document.querySelector(\"[aria-label='Back to the live board']\");",
        json!([]),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cleared_board_is_found_in_the_history_on_either_node_and_restored_for_everyone() {
    let Some(_lock) = prerequisites().await else {
        return;
    };
    let cluster = Cluster::start().await;
    let driver = Driver::start().await;
    let (ada, bob) = cluster.editor_on_a_viewer_on_b(&driver, (W, H)).await;
    let ([top, bottom], [first, second]) = ada.draw_two_strokes_seen_by(&bob).await;
    let drawn = (first, second);

    // Ada clears the board.
    for tab in [&ada, &bob] {
        tab.js("window.confirm = () => true;", json!([])).await;
    }
    ada.choose_from_menu("Clear board").await;
    bob.wait_ink("the board cleared", top, 0).await;
    bob.wait_ink("the board cleared", bottom, 0).await;

    // Bob, view-only on node B, finds the board as it was before the Clear, and may look but
    // not bring it back.
    show_newest_version(&bob).await;
    bob.wait_ink("the version's first stroke", top, drawn.0 * 9 / 10)
        .await;
    bob.wait_ink("the version's second stroke", bottom, drawn.1 * 9 / 10)
        .await;
    let restore = "return !!document.querySelector(\"[aria-label='Restore this version']\");";
    assert_eq!(bob.js(restore, json!([])).await, json!(false));
    bob.screenshot("versions-viewer-looks-back").await;
    bob.press("[aria-label='Back to the live board']").await;
    bob.wait_ink("the live, empty board again", top, 0).await;

    // Ada, on node A, brings it back for everyone.
    show_newest_version(&ada).await;
    ada.wait_ink("the version on Ada's tab", top, drawn.0 * 9 / 10)
        .await;
    ada.press("[aria-label='Restore this version']").await;
    bob.wait_ink("the first stroke restored", top, drawn.0 * 9 / 10)
        .await;
    bob.wait_ink("the second stroke restored", bottom, drawn.1 * 9 / 10)
        .await;
    ada.wait_for(
        "Ada's tab back on the live board, drawing",
        "return !document.querySelector(\"[aria-label='Back to the live board']\") \
         && !!document.querySelector(\"[aria-label='Undo']\");",
        json!([]),
    )
    .await;
    bob.screenshot("versions-restored").await;

    // One undo takes the restore back, for Bob too; redo brings it again.
    ada.press("[aria-label='Undo']").await;
    bob.wait_ink("the restore undone", top, 0).await;
    bob.wait_ink("the restore undone", bottom, 0).await;
    ada.press("[aria-label='Redo']").await;
    bob.wait_ink("restored again", top, drawn.0 * 9 / 10).await;
    bob.wait_ink("restored again", bottom, drawn.1 * 9 / 10)
        .await;

    // Ada keeps the history to the editors; Bob's view link is told so.
    open_history(&ada).await;
    let allowed = "return !!document.querySelector(\"[aria-label='View links may see the history']\")?.checked;";
    ada.wait_for("the history open, viewers allowed", allowed, json!([]))
        .await;
    ada.press("[aria-label='View links may see the history']")
        .await;
    ada.wait_for(
        "viewers no longer allowed",
        &allowed.replace("return !!", "return !"),
        json!([]),
    )
    .await;
    open_history(&bob).await;
    bob.wait_for(
        "Bob told the history is the editors'",
        "return (document.querySelector('#history')?.textContent || '')\
           .includes('keep its history to themselves');",
        json!([]),
    )
    .await;
    let listed = "return document.querySelectorAll(\"#history [aria-label^='Show the version of']\").length;";
    assert_eq!(bob.js(listed, json!([])).await, json!(0));
    bob.screenshot("versions-kept-from-viewers").await;
}
