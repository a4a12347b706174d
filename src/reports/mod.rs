//! Reports: self-contained HTML documents (inline style, inline SVG charts, no script, never
//! raw rows) made from what the store keeps. Today the drift report of a monitoring check or of
//! an ad-hoc comparison. Reads domain results; domain modules never import it.

pub mod drift;
