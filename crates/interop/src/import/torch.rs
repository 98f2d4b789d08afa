//! PyTorch's `torch.save` files (`.pt`, `.pth`, `.bin`), read without Python.
//!
//! Since torch 1.6 these are zip archives: `<name>/data.pkl` (the pickled object, read by
//! [`super::pickle`]) and `<name>/data/<key>` (one record of raw little-endian elements per
//! storage). Tensors are described by the pickle and read lazily: a checkpoint's optimizer
//! moments are never touched when only the weights are wanted.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use half::{bf16, f16};
use zip::ZipArchive;

use super::error::{ImportError, Result};
use super::pickle::{self, StorageDtype, TensorRef, Value};

/// Largest `data.pkl` read (the pickle holds structure, not weights).
const MAX_PICKLE_BYTES: u64 = 256 << 20;

/// An open `torch.save` archive and the object its pickle describes.
pub struct TorchFile {
    path: PathBuf,
    zip: ZipArchive<File>,
    /// The archive's top folder, with its slash (`archive/`, `ckpt/`, …).
    prefix: String,
    /// The unpickled object (tensors as [`Value::Tensor`] references).
    pub root: Value,
}

impl TorchFile {
    /// Opens `path` and unpickles its `data.pkl`. A pre-1.6 (non-zip) file is refused with
    /// the way out.
    pub fn open(path: &Path) -> Result<TorchFile> {
        let bad = |msg: String| ImportError::bad(path, msg);
        let file = File::open(path).map_err(|e| bad(format!("cannot open: {e}")))?;
        let mut zip = ZipArchive::new(file).map_err(|e| {
            bad(format!(
                "not a zip-format torch.save file ({e}); files from torch < 1.6 are not supported: re-save with a recent torch"
            ))
        })?;
        let pkl = (0..zip.len())
            .filter_map(|i| zip.name_for_index(i).map(str::to_string))
            .find(|n| n.ends_with("data.pkl") && n.matches('/').count() <= 1)
            .ok_or_else(|| bad("the zip holds no data.pkl: not a torch.save file".into()))?;
        let prefix = pkl.trim_end_matches("data.pkl").to_string();
        let bytes = {
            let entry = zip
                .by_name(&pkl)
                .map_err(|e| bad(format!("cannot read {pkl}: {e}")))?;
            let mut buf = Vec::new();
            entry
                .take(MAX_PICKLE_BYTES)
                .read_to_end(&mut buf)
                .map_err(|e| bad(format!("cannot read {pkl}: {e}")))?;
            buf
        };
        let root = pickle::read(&bytes).map_err(|e| bad(format!("{pkl}: {e}")))?;
        Ok(TorchFile {
            path: path.to_path_buf(),
            zip,
            prefix,
            root,
        })
    }

    /// The elements of tensor `t` (called `name` in errors), converted to f32, row-major.
    pub fn read_f32(&mut self, t: &TensorRef, name: &str) -> Result<Vec<f32>> {
        let bad = |msg: String| ImportError::bad(&self.path, format!("tensor {name}: {msg}"));
        let dtype = t.storage.dtype;
        if let StorageDtype::Other(ty, _) = dtype {
            return Err(bad(format!("holds {ty}, not floating-point weights")));
        }
        let numel = t
            .shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .ok_or_else(|| bad("its size overflows".into()))?;
        // The last element the view touches, so the storage read is bounded by the view.
        let mut last = t.offset;
        for (&d, &s) in t.shape.iter().zip(&t.stride) {
            if d > 0 {
                let reach = (d - 1)
                    .checked_mul(s)
                    .ok_or_else(|| bad("its strides overflow".into()))?;
                last = last
                    .checked_add(reach)
                    .ok_or_else(|| bad("its strides overflow".into()))?;
            }
        }
        if numel == 0 {
            return Ok(Vec::new());
        }
        let want = (last + 1)
            .checked_mul(dtype.size())
            .ok_or_else(|| bad("its size overflows".into()))?;
        let record = format!("{}data/{}", self.prefix, t.storage.key);
        let bytes = {
            let entry = self
                .zip
                .by_name(&record)
                .map_err(|e| bad(format!("storage {record}: {e}")))?;
            let mut buf = Vec::new();
            entry
                .take(want as u64)
                .read_to_end(&mut buf)
                .map_err(|e| bad(format!("storage {record}: {e}")))?;
            buf
        };
        if bytes.len() < want {
            return Err(bad(format!(
                "storage {record} has {} bytes, the tensor needs {want}",
                bytes.len()
            )));
        }
        if numel > bytes.len() {
            // More elements than bytes: a broadcast view no state_dict holds.
            return Err(bad("a view larger than its storage".into()));
        }
        let size = dtype.size();
        let at = |i: usize| element(dtype, &bytes[i * size..(i + 1) * size]);
        if t.stride == contiguous_strides(&t.shape) {
            return Ok((t.offset..t.offset + numel).map(at).collect());
        }
        let mut out = Vec::with_capacity(numel);
        let mut index = vec![0usize; t.shape.len()];
        for _ in 0..numel {
            let pos = t.offset
                + index
                    .iter()
                    .zip(&t.stride)
                    .map(|(i, s)| i * s)
                    .sum::<usize>();
            out.push(at(pos));
            for d in (0..index.len()).rev() {
                index[d] += 1;
                if index[d] < t.shape[d] {
                    break;
                }
                index[d] = 0;
            }
        }
        Ok(out)
    }

    /// The file this was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// One little-endian element of `dtype` as f32 (`b` holds exactly its bytes).
fn element(dtype: StorageDtype, b: &[u8]) -> f32 {
    match (dtype, b) {
        (StorageDtype::F32, &[a, b, c, d]) => f32::from_le_bytes([a, b, c, d]),
        (StorageDtype::F64, b) if b.len() == 8 => {
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            f64::from_le_bytes(a) as f32
        }
        (StorageDtype::F16, &[a, b]) => f16::from_le_bytes([a, b]).to_f32(),
        (StorageDtype::BF16, &[a, b]) => bf16::from_le_bytes([a, b]).to_f32(),
        _ => f32::NAN,
    }
}

/// Row-major strides of `shape`.
fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1usize; shape.len()];
    for d in (0..shape.len().saturating_sub(1)).rev() {
        s[d] = s[d + 1] * shape[d + 1];
    }
    s
}

/// The `(name, tensor)` entries of a state_dict value; anything that is not a tensor
/// (nanoGPT's checkpoints hold none, but a state_dict may carry `_metadata`) is skipped.
pub fn state_dict_entries(v: &Value) -> Option<Vec<(String, TensorRef)>> {
    let Value::Dict(items) = v else {
        return None;
    };
    Some(
        items
            .iter()
            .filter_map(|(k, v)| match (k, v) {
                (Value::Str(k), Value::Tensor(t)) => Some((k.clone(), t.clone())),
                _ => None,
            })
            .collect(),
    )
}
