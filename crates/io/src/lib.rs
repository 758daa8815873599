//! Where events come from and where stories go. Every sink implements [`StorySink`]; sources (syslog,
//! followed files) hand records to a [`source::RecordIngest`].

pub mod sink;
pub mod source;

pub use sink::{
    file::RotatingFileSink, memory::MemorySink, pretty::PrettySink, stdout::StdoutSink, SinkConfig,
    SinkFanout, StorySink,
};
