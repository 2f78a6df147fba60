//! Foreign interfaces over the core: the C ABI (`c`) and the JNI bridge (`jni`).
//! Both only convert types, map errors and guard against misuse; they share the
//! handle tables (`handles`: typed, generation-checked ids, one lookup for both)
//! and the core's panic message (`crate::error::panic_message`).

pub mod c;
mod handles;
pub mod jni;
