//! Registered states: names, kinds and the opaque metadata the caller keeps with them.

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// A registered state's handle: its index in registration order.
pub type StateId = u32;

/// The physical kinds. Reducing and aggregating states are values whose merge
/// function runs in the caller. A sorted set (Flink's timers) holds byte strings
/// per key group, in byte order; it is stored as the user keys of one map per key
/// group, under an empty key and namespace, with empty values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[repr(u8)]
pub enum StateKind {
    Value = 0,
    List = 1,
    Map = 2,
    SortedSet = 3,
}

impl StateKind {
    pub fn name(&self) -> &'static str {
        match self {
            StateKind::Value => "value",
            StateKind::List => "list",
            StateKind::Map => "map",
            StateKind::SortedSet => "sorted set",
        }
    }

    pub fn from_u8(v: u8) -> Option<Self> {
        match v {
            0 => Some(StateKind::Value),
            1 => Some(StateKind::List),
            2 => Some(StateKind::Map),
            3 => Some(StateKind::SortedSet),
            _ => None,
        }
    }
}

/// What the backend knows of one state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateInfo {
    pub id: StateId,
    pub name: String,
    pub kind: StateKind,
    /// Opaque bytes stored with the state and returned on restore
    /// (Flink keeps its serializer snapshots here).
    pub metadata: Vec<u8>,
}

/// The states of one backend, by id and by name.
#[derive(Default, Debug)]
pub struct StateRegistry {
    states: Vec<StateInfo>,
    by_name: HashMap<String, StateId>,
}

/// Upper bound on registered states; ids are u32 but a job with more is a bug.
pub const MAX_STATES: usize = 1 << 16;

impl StateRegistry {
    /// Registers `name` or returns its existing id. A known name with another kind
    /// is an error; with the same kind, the metadata is replaced.
    /// Returns the id and whether the state is new.
    pub fn register(
        &mut self,
        name: &str,
        kind: StateKind,
        metadata: &[u8],
    ) -> Result<(StateId, bool)> {
        if name.is_empty() {
            return Err(Error::invalid("a state name must not be empty"));
        }
        if let Some(&id) = self.by_name.get(name) {
            let info = &mut self.states[id as usize];
            if info.kind != kind {
                return Err(Error::State(format!(
                    "state '{name}' is registered as {} state, cannot register it as {} state",
                    info.kind.name(),
                    kind.name()
                )));
            }
            if info.metadata != metadata {
                info.metadata = metadata.to_vec();
            }
            return Ok((id, false));
        }
        if self.states.len() >= MAX_STATES {
            return Err(Error::State(format!(
                "too many states: at most {MAX_STATES} per backend"
            )));
        }
        let id = self.states.len() as StateId;
        self.states.push(StateInfo {
            id,
            name: name.to_string(),
            kind,
            metadata: metadata.to_vec(),
        });
        self.by_name.insert(name.to_string(), id);
        Ok((id, true))
    }

    /// The state with this id, checked to be of `kind`.
    #[inline]
    pub fn expect(&self, id: StateId, kind: StateKind) -> Result<&StateInfo> {
        let info = self.get(id)?;
        if info.kind != kind {
            return Err(Error::State(format!(
                "state '{}' is a {} state, not a {} state",
                info.name,
                info.kind.name(),
                kind.name()
            )));
        }
        Ok(info)
    }

    #[inline]
    pub fn get(&self, id: StateId) -> Result<&StateInfo> {
        self.states
            .get(id as usize)
            .ok_or_else(|| Error::State(format!("no state with id {id}")))
    }

    pub fn by_name(&self, name: &str) -> Option<&StateInfo> {
        self.by_name.get(name).map(|&id| &self.states[id as usize])
    }

    pub fn all(&self) -> &[StateInfo] {
        &self.states
    }
}
