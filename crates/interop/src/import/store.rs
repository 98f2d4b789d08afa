//! Named tensors from any source file, read one at a time as f32.
//!
//! A [`Store`] is a set of shards (safetensors files, memory-mapped, or `torch.save`
//! archives) and an index from *canonical* names — nanoGPT's, with `transformer.` — to the
//! shard and the name as stored. Canonical names undo what other tools add or drop:
//! `_orig_mod.` (torch.compile), `module.` (DDP), and GPT-2's bare `h.0…`/`wte…` names.
//! Tensors are converted (f16, bf16, f64 → f32) only when read, so peak memory is the
//! model plus one tensor.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use half::{bf16, f16};
use memmap2::Mmap;
use safetensors::tensor::{Dtype, SafeTensors};

use super::error::{ImportError, Result};
use super::pickle::TensorRef;
use super::torch::{state_dict_entries, TorchFile};

/// One file of tensors.
enum Shard {
    /// A memory-mapped safetensors file.
    Safetensors { path: PathBuf, map: Mmap },
    /// A `torch.save` archive and its tensors by stored name.
    Torch {
        file: Box<TorchFile>,
        tensors: HashMap<String, TensorRef>,
    },
}

/// Where a canonical name's tensor is: shard, stored name, shape.
#[derive(Clone, Debug)]
struct Entry {
    shard: usize,
    stored: String,
    shape: Vec<usize>,
    /// For torch tensors: the storage view, so tied names sharing a storage are recognised.
    view: Option<TensorRef>,
}

/// Named tensors across one or more shard files.
pub struct Store {
    shards: Vec<Shard>,
    index: HashMap<String, Entry>,
}

/// nanoGPT's name for a stored one: `_orig_mod.` / `module.` dropped, `transformer.` added
/// to GPT-2's bare names.
pub fn canonical(name: &str) -> String {
    let mut n = name;
    while let Some(rest) = n
        .strip_prefix("_orig_mod.")
        .or_else(|| n.strip_prefix("module."))
    {
        n = rest;
    }
    let bare = ["h.", "wte.", "wpe.", "ln_f."];
    if bare.iter().any(|p| n.starts_with(p)) {
        format!("transformer.{n}")
    } else {
        n.to_string()
    }
}

impl Store {
    /// An empty store.
    pub fn new() -> Store {
        Store {
            shards: Vec::new(),
            index: HashMap::new(),
        }
    }

    /// Adds a safetensors file.
    pub fn add_safetensors(&mut self, path: &Path) -> Result<()> {
        let bad = |msg: String| ImportError::bad(path, msg);
        let file = File::open(path).map_err(|e| bad(format!("cannot open: {e}")))?;
        // SAFETY: the file is opened read-only and only read through `map`; lmforge does
        // not write to files it imports while reading them.
        let map = unsafe { Mmap::map(&file) }.map_err(|e| bad(format!("cannot map: {e}")))?;
        let st = SafeTensors::deserialize(&map)
            .map_err(|e| bad(format!("not a valid safetensors file: {e}")))?;
        let shard = self.shards.len();
        let entries: Vec<(String, Vec<usize>)> = st
            .tensors()
            .into_iter()
            .map(|(n, v)| (n, v.shape().to_vec()))
            .collect();
        for (name, shape) in entries {
            self.insert(path, name, shard, shape, None)?;
        }
        self.shards.push(Shard::Safetensors {
            path: path.to_path_buf(),
            map,
        });
        Ok(())
    }

    /// Adds the tensors of a state_dict inside an open `torch.save` archive (`dict` is the
    /// state_dict's value, `root` of the file or its `model` entry).
    pub fn add_torch(&mut self, file: TorchFile, dict: &super::pickle::Value) -> Result<()> {
        let path = file.path().to_path_buf();
        let entries = state_dict_entries(dict)
            .ok_or_else(|| ImportError::bad(&path, "the state_dict is not a dict of tensors"))?;
        let shard = self.shards.len();
        let mut tensors = HashMap::new();
        for (name, t) in entries {
            self.insert(&path, name.clone(), shard, t.shape.clone(), Some(t.clone()))?;
            tensors.insert(name, t);
        }
        self.shards.push(Shard::Torch {
            file: Box::new(file),
            tensors,
        });
        Ok(())
    }

    fn insert(
        &mut self,
        path: &Path,
        stored: String,
        shard: usize,
        shape: Vec<usize>,
        view: Option<TensorRef>,
    ) -> Result<()> {
        let name = canonical(&stored);
        if let Some(prev) = self.index.get(&name) {
            return Err(ImportError::bad(
                path,
                format!(
                    "tensor {name} appears twice (as {} and {stored})",
                    prev.stored
                ),
            ));
        }
        self.index.insert(
            name,
            Entry {
                shard,
                stored,
                shape,
                view,
            },
        );
        Ok(())
    }

    /// Canonical names of every tensor.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.index.keys().map(String::as_str)
    }

    /// The shape of tensor `name` (canonical), if present.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.index.get(name).map(|e| e.shape.as_slice())
    }

    /// True when `a` and `b` are torch views of the same storage elements (tied weights
    /// saved under two names).
    pub fn same_storage(&self, a: &str, b: &str) -> bool {
        match (self.index.get(a), self.index.get(b)) {
            (Some(x), Some(y)) => x.view.is_some() && x.view == y.view,
            _ => false,
        }
    }

    /// The file holding tensor `name` (for error messages).
    pub fn file_of(&self, name: &str) -> Option<PathBuf> {
        let e = self.index.get(name)?;
        Some(match &self.shards[e.shard] {
            Shard::Safetensors { path, .. } => path.clone(),
            Shard::Torch { file, .. } => file.path().to_path_buf(),
        })
    }

    /// Tensor `name` (canonical) as row-major f32.
    pub fn read_f32(&mut self, name: &str) -> Result<Vec<f32>> {
        let Some(e) = self.index.get(name).cloned() else {
            return Err(ImportError::Bad {
                path: "source".into(),
                msg: format!("tensor {name} is missing"),
            });
        };
        match &mut self.shards[e.shard] {
            Shard::Safetensors { path, map } => read_safetensor(path, map, &e.stored),
            Shard::Torch { file, tensors } => {
                let t = tensors.get(&e.stored).cloned().ok_or_else(|| {
                    ImportError::bad(file.path(), format!("tensor {} vanished", e.stored))
                })?;
                file.read_f32(&t, &e.stored)
            }
        }
    }
}

impl Default for Store {
    fn default() -> Self {
        Store::new()
    }
}

fn read_safetensor(path: &Path, map: &Mmap, name: &str) -> Result<Vec<f32>> {
    let bad = |msg: String| ImportError::bad(path, format!("tensor {name}: {msg}"));
    let st = SafeTensors::deserialize(map).map_err(|e| bad(e.to_string()))?;
    let t = st.tensor(name).map_err(|e| bad(e.to_string()))?;
    let b = t.data();
    Ok(match t.dtype() {
        Dtype::F32 => b
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => b
            .chunks_exact(2)
            .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::BF16 => b
            .chunks_exact(2)
            .map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        Dtype::F64 => b
            .chunks_exact(8)
            .map(|c| {
                let mut a = [0u8; 8];
                a.copy_from_slice(c);
                f64::from_le_bytes(a) as f32
            })
            .collect(),
        other => return Err(bad(format!("holds {other:?}, not floating-point weights"))),
    })
}

#[cfg(test)]
mod tests {
    use super::canonical;

    #[test]
    fn canonical_names_undo_compile_ddp_and_bare_gpt2_names() {
        assert_eq!(
            canonical("_orig_mod.transformer.h.0.ln_1.weight"),
            "transformer.h.0.ln_1.weight"
        );
        assert_eq!(
            canonical("module._orig_mod.lm_head.weight"),
            "lm_head.weight"
        );
        assert_eq!(canonical("h.3.attn.bias"), "transformer.h.3.attn.bias");
        assert_eq!(canonical("wte.weight"), "transformer.wte.weight");
        assert_eq!(canonical("lm_head.weight"), "lm_head.weight");
        assert_eq!(canonical("heads.0"), "heads.0");
    }
}
