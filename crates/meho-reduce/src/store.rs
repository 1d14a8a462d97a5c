//! TEMPORARY STUB (replaced by the real store on merge).
#![allow(missing_docs, clippy::unused_async)]
use crate::ReduceError;
#[derive(Debug, Clone, Copy)]
pub struct Caps {
    pub max_result_bytes: u64,
    pub max_principal_bytes: u64,
}
pub struct NewResult<'a> {
    pub tenant: &'a str,
    pub principal: &'a str,
    pub tool: &'a str,
    pub call_id: &'a str,
    pub shape: &'a str,
    pub columns: &'a [String],
    pub row_count: u64,
    pub rows: Vec<u8>,
    pub created_at_us: i64,
    pub expires_at_us: i64,
}
pub struct Kept {
    pub handle: String,
    pub evicted: Vec<String>,
}
pub struct Meta {
    pub handle: String,
    pub tool: String,
    pub call_id: String,
    pub shape: String,
    pub columns: Vec<String>,
    pub row_count: u64,
    pub bytes: u64,
    pub created_at_us: i64,
    pub expires_at_us: i64,
}
#[derive(Debug, Clone)]
pub struct ResultStore {
    caps: Caps,
}
impl ResultStore {
    pub fn new(_pool: meho_store::Pool, caps: Caps) -> Self {
        Self { caps }
    }
    pub fn caps(&self) -> Caps {
        self.caps
    }
    pub async fn put(&self, _new: NewResult<'_>) -> Result<Kept, ReduceError> {
        Err(ReduceError::Store("stub".into()))
    }
    pub async fn meta(&self, _t: &str, _p: &str, h: &str, _n: i64) -> Result<Meta, ReduceError> {
        Err(ReduceError::NotFound(h.into()))
    }
    pub async fn rows(
        &self,
        _t: &str,
        _p: &str,
        h: &str,
        _n: i64,
    ) -> Result<(Meta, Vec<u8>), ReduceError> {
        Err(ReduceError::NotFound(h.into()))
    }
    pub async fn sweep(&self, _n: i64) -> Result<u64, ReduceError> {
        Ok(0)
    }
}
