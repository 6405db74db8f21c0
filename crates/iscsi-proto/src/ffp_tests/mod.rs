//! Full feature phase tests driving a logged-in [`Connection`](crate::Connection)
//! with PDUs built from iscsi-wire types.

mod limits;
mod read;
mod rejects;
mod text;
mod tmf_logout;
mod window;
mod wire;
mod write;
