//! Browser end-to-end tests of Kokuban live in `tests/`. They start their own `kokuban`
//! servers (the server library, port 0, temporary data directories) serving the built web app
//! from `dist/` (run `trunk build --release --offline` first; `cargo xtask test` does), and
//! drive Debian's headless Chromium through ChromeDriver over WebDriver. `tests/browser.rs`
//! runs a two-node cluster on a `redis-server` of its own and puts the two tabs of a room on
//! different nodes. `tests/ui.rs` tries the app as a newcomer from other whiteboards would:
//! navigation, the phone and tablet layout, popovers, the clipboard, shortcuts, error pages.
//! Screenshots of every end state are saved under `target/e2e-screenshots/`.
