//! Any bytes given to the snapshot decoder yield a board or an error, never a panic; a decoded
//! board re-encodes to the same board.
#![no_main]

use kokuban_board::Board;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(board) = Board::from_snapshot(data) {
        assert_eq!(Board::from_snapshot(&board.snapshot()).as_ref(), Ok(&board));
    }
});
