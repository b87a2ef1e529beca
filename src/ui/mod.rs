//! Presentation. Everything that paints text from the network goes through [`text`].

pub mod text;
