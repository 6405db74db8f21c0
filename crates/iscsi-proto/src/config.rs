//! Static configuration handed to every [`Connection`](crate::Connection).

use std::sync::Arc;

use crate::types::SessionInfo;

/// One exported target as announced by SendTargets and accepted at login.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TargetEntry {
    /// The iSCSI name (`iqn.…`, `eui.…`, `naa.…`).
    pub name: String,
    /// Optional human-readable alias (sent as `TargetAlias`).
    pub alias: Option<String>,
    /// Portals as `"127.0.0.1:3260,1"` / `"[::1]:3260,1"` (address:port,portal-group-tag).
    /// Empty: SendTargets answers with the portal of the asking connection.
    pub portals: Vec<String>,
}

/// All targets this server exports.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Catalog {
    /// The targets, in announcement order.
    pub targets: Vec<TargetEntry>,
}

impl Catalog {
    /// The target with this name. iSCSI names compare case-insensitively
    /// (they are normalized to lower case by stringprep, RFC 3722).
    pub fn find(&self, name: &str) -> Option<&TargetEntry> {
        self.targets
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(name))
    }
}

/// The default per-connection write data budget (16 MiB).
pub const DEFAULT_WRITE_BUDGET: u64 = 16 << 20;
/// The smallest write data budget (64 KiB).
pub const MIN_WRITE_BUDGET: u64 = 64 << 10;
/// The largest write data budget: the largest Expected Data Transfer Length (4 GiB - 1).
pub const MAX_WRITE_BUDGET: u64 = u32::MAX as u64;

/// Decides whether a login may complete into a session: the target's session limit.
pub trait SessionGate: Send + Sync + std::fmt::Debug {
    /// Called once per login, just before the final Login Response (T=1, NSG=3). `Err(status)`
    /// refuses the login with that status (class << 8 | detail) and closes the connection.
    fn admit(&self, info: &SessionInfo) -> Result<(), u16>;
}

/// Limits and preferences the target negotiates with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// MaxRecvDataSegmentLength we declare (512..=16777215).
    pub max_recv_data_segment: u32,
    /// MaxBurstLength we offer (512..=16777215).
    pub max_burst: u32,
    /// FirstBurstLength we offer (512..=16777215, <= max_burst).
    pub first_burst: u32,
    /// MaxOutstandingR2T we offer (1..=65535).
    pub max_outstanding_r2t: u32,
    /// Size of the CmdSN window (MaxCmdSN - ExpCmdSN + 1), at least 1.
    pub cmd_window: u32,
    /// ImmediateData we offer.
    pub immediate_data: bool,
    /// InitialR2T we offer.
    pub initial_r2t: bool,
    /// DefaultTime2Wait we offer (seconds).
    pub default_time2wait: u16,
    /// DefaultTime2Retain we offer (seconds).
    pub default_time2retain: u16,
    /// The whole login must finish within this many milliseconds.
    pub login_timeout_ms: u64,
    /// Send a NOP-In ping after this many idle milliseconds (0 = never).
    pub nop_interval_ms: u64,
    /// Close the connection when a NOP-In ping is not answered within this time.
    pub nop_timeout_ms: u64,
    /// A write command whose solicited or unsolicited Data-Out has made no progress for this
    /// many milliseconds is ended with CHECK CONDITION, ABORTED COMMAND / INITIATOR RESPONSE
    /// TIMEOUT and its buffer freed (0 = never).
    pub data_out_timeout_ms: u64,
    /// Most write data (bytes) one connection collects at a time: writes are admitted to R2T
    /// solicitation in arrival order while the Expected Data Transfer Lengths of the admitted
    /// ones fit; a write longer than this is refused with CHECK CONDITION, ILLEGAL REQUEST /
    /// INVALID FIELD IN CDB. Unsolicited data (immediate and up to FirstBurstLength) comes on
    /// top, at most `cmd_window` times FirstBurstLength.
    pub write_budget: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_recv_data_segment: 256 * 1024,
            max_burst: 1024 * 1024,
            first_burst: 64 * 1024,
            max_outstanding_r2t: 4,
            cmd_window: 128,
            immediate_data: true,
            initial_r2t: false,
            default_time2wait: 2,
            default_time2retain: 20,
            login_timeout_ms: 15_000,
            nop_interval_ms: 0,
            nop_timeout_ms: 15_000,
            data_out_timeout_ms: 30_000,
            write_budget: DEFAULT_WRITE_BUDGET,
        }
    }
}

impl Limits {
    /// The limits with every value forced into its RFC 7143 range.
    pub fn sanitized(&self) -> Limits {
        const MAX_LEN: u32 = 0x00ff_ffff;
        let max_burst = self.max_burst.clamp(512, MAX_LEN);
        Limits {
            max_recv_data_segment: self.max_recv_data_segment.clamp(512, MAX_LEN),
            max_burst,
            first_burst: self.first_burst.clamp(512, max_burst),
            max_outstanding_r2t: self.max_outstanding_r2t.clamp(1, 65535),
            cmd_window: self.cmd_window.clamp(1, 1 << 30),
            default_time2wait: self.default_time2wait.min(3600),
            default_time2retain: self.default_time2retain.min(3600),
            write_budget: self.write_budget.clamp(MIN_WRITE_BUDGET, MAX_WRITE_BUDGET),
            ..self.clone()
        }
    }
}

/// Per-connection configuration.
#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    /// The exported targets.
    pub catalog: Arc<Catalog>,
    /// Negotiation limits.
    pub limits: Limits,
    /// Target portal group tag of the portal this connection arrived on.
    pub portal_group_tag: u16,
    /// `"addr:port"` of this connection's local socket.
    pub local_portal: String,
    /// Nonzero TSIH the target allocated for a new session made on this connection.
    pub tsih: u16,
}
