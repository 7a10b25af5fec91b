//! Lua hooks: filled in by the Lua hooks work (issue 3).
