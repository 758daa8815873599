//! The text formats' parsers as they were before the parsing optimization (commit e1e9789), kept to
//! check that the optimized ones give identical results (`differential.rs`). The JSON formats need no
//! such copy: their DOM path is still the original and is compared with their fast path.
//!
//! Update these along with any intended change of the text formats' behaviour.

#![allow(dead_code)]

pub(crate) mod aws_vpc;
mod common;
mod csv;
pub(crate) mod panos;
