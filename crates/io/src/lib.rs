//! Where events come from and where stories go. Every sink implements [`StorySink`].

pub mod sink;

pub use sink::{
    file::RotatingFileSink, memory::MemorySink, pretty::PrettySink, stdout::StdoutSink, StorySink,
};
