pub mod bench;
pub mod check;
pub mod dead_letters;
pub mod demo;
pub mod eval;
pub mod generate;
pub mod replay;
pub mod run;
pub mod sinks;
pub mod tenants;

use std::io::IsTerminal;

/// Progress bars only where a person watches: a TTY on stderr.
pub fn progress_wanted() -> bool {
    std::io::stderr().is_terminal()
}
