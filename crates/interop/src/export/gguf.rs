//! A small GGUF (version 3) writer and reader, following the spec in llama.cpp's
//! `docs/gguf.md`: header (`GGUF`, version, tensor count, metadata count), metadata
//! key/values, tensor infos (name, dims innermost first, ggml type, offset), padding to the
//! alignment (32), tensor data (each tensor at an aligned offset). Little-endian throughout.
//!
//! No maintained GGUF crate fits: the writers on crates.io are unmaintained or pull in a
//! whole inference stack (candle). The reader exists for tests and for checking an export.

use std::io::{self, Write};

/// Alignment of the data section and of every tensor in it.
pub const ALIGNMENT: usize = 32;
const MAGIC: &[u8; 4] = b"GGUF";
const VERSION: u32 = 3;

/// ggml tensor types this writer emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GgmlType {
    /// 32-bit float.
    F32 = 0,
    /// IEEE half.
    F16 = 1,
    /// bfloat16.
    Bf16 = 30,
}

impl GgmlType {
    fn from_u32(v: u32) -> Option<Self> {
        match v {
            0 => Some(GgmlType::F32),
            1 => Some(GgmlType::F16),
            30 => Some(GgmlType::Bf16),
            _ => None,
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            GgmlType::F32 => 4,
            GgmlType::F16 | GgmlType::Bf16 => 2,
        }
    }
}

/// A metadata value (the kinds lmforge writes).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `UINT32` (type 4).
    U32(u32),
    /// `INT32` (type 5).
    I32(i32),
    /// `FLOAT32` (type 6).
    F32(f32),
    /// `BOOL` (type 7).
    Bool(bool),
    /// `STRING` (type 8).
    Str(String),
    /// `ARRAY` (type 9) of `STRING`.
    Strs(Vec<String>),
    /// `ARRAY` (type 9) of `INT32`.
    I32s(Vec<i32>),
}

/// One tensor's header: `dims` innermost first (a row-major `[rows, cols]` matrix is
/// `[cols, rows]`), so nn.Linear's `[out, in]` weight is `{in, out}` as ggml expects.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    /// llama.cpp's tensor name (`blk.0.attn_qkv.weight`).
    pub name: String,
    /// Dimensions, innermost first.
    pub dims: Vec<u64>,
    /// Element type.
    pub ty: GgmlType,
    /// Offset from the start of the data section (a multiple of [`ALIGNMENT`]).
    pub offset: u64,
}

/// A GGUF file to write: metadata in order, tensors with their bytes.
#[derive(Default)]
pub struct GgufWriter {
    metadata: Vec<(String, Value)>,
    tensors: Vec<(TensorInfo, Vec<u8>)>,
    data_len: u64,
}

fn pad_len(n: u64) -> u64 {
    (ALIGNMENT as u64 - n % ALIGNMENT as u64) % ALIGNMENT as u64
}

impl GgufWriter {
    /// An empty file.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a metadata key.
    pub fn kv(&mut self, key: &str, value: Value) {
        self.metadata.push((key.to_string(), value));
    }

    /// Adds a tensor: `shape` row-major, `bytes` its elements in `ty`.
    pub fn tensor(&mut self, name: &str, shape: &[usize], ty: GgmlType, bytes: Vec<u8>) {
        debug_assert_eq!(shape.iter().product::<usize>() * ty.size(), bytes.len());
        let info = TensorInfo {
            name: name.to_string(),
            dims: shape.iter().rev().map(|&d| d as u64).collect(),
            ty,
            offset: self.data_len,
        };
        self.data_len += bytes.len() as u64;
        self.data_len += pad_len(self.data_len);
        self.tensors.push((info, bytes));
    }

    /// Writes the whole file.
    pub fn write(&self, w: &mut impl Write) -> io::Result<()> {
        let mut header = Vec::new();
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&VERSION.to_le_bytes());
        header.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        header.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (k, v) in &self.metadata {
            put_str(&mut header, k);
            put_value(&mut header, v);
        }
        for (info, _) in &self.tensors {
            put_str(&mut header, &info.name);
            header.extend_from_slice(&(info.dims.len() as u32).to_le_bytes());
            for d in &info.dims {
                header.extend_from_slice(&d.to_le_bytes());
            }
            header.extend_from_slice(&(info.ty as u32).to_le_bytes());
            header.extend_from_slice(&info.offset.to_le_bytes());
        }
        header.resize(header.len() + pad_len(header.len() as u64) as usize, 0);
        w.write_all(&header)?;
        for (_, bytes) in &self.tensors {
            w.write_all(bytes)?;
            w.write_all(&vec![0u8; pad_len(bytes.len() as u64) as usize])?;
        }
        Ok(())
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_value(out: &mut Vec<u8>, v: &Value) {
    let ty = |out: &mut Vec<u8>, t: u32| out.extend_from_slice(&t.to_le_bytes());
    match v {
        Value::U32(x) => {
            ty(out, 4);
            out.extend_from_slice(&x.to_le_bytes());
        }
        Value::I32(x) => {
            ty(out, 5);
            out.extend_from_slice(&x.to_le_bytes());
        }
        Value::F32(x) => {
            ty(out, 6);
            out.extend_from_slice(&x.to_le_bytes());
        }
        Value::Bool(x) => {
            ty(out, 7);
            out.push(u8::from(*x));
        }
        Value::Str(s) => {
            ty(out, 8);
            put_str(out, s);
        }
        Value::Strs(items) => {
            ty(out, 9);
            ty(out, 8);
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for s in items {
                put_str(out, s);
            }
        }
        Value::I32s(items) => {
            ty(out, 9);
            ty(out, 5);
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for x in items {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
    }
}

/// A parsed GGUF header: metadata and tensor infos (the data is left in the bytes).
#[derive(Debug, Clone, PartialEq)]
pub struct GgufFile {
    /// Metadata in file order.
    pub metadata: Vec<(String, Value)>,
    /// Tensor infos in file order.
    pub tensors: Vec<TensorInfo>,
    /// Byte offset of the data section.
    pub data_start: usize,
}

impl GgufFile {
    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The bytes of tensor `info` inside the file `bytes`.
    pub fn tensor_bytes<'a>(&self, bytes: &'a [u8], info: &TensorInfo) -> Option<&'a [u8]> {
        let n: u64 = info.dims.iter().product::<u64>() * info.ty.size() as u64;
        let start = self
            .data_start
            .checked_add(usize::try_from(info.offset).ok()?)?;
        bytes.get(start..start.checked_add(usize::try_from(n).ok()?)?)
    }
}

/// A bounds-checked little-endian cursor.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| format!("truncated at byte {}", self.pos))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    fn u32(&mut self) -> Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, String> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    fn len(&mut self) -> Result<usize, String> {
        let n = self.u64()?;
        usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.bytes.len())
            .ok_or_else(|| format!("length {n} at byte {} exceeds the file", self.pos))
    }
    fn string(&mut self) -> Result<String, String> {
        let n = self.len()?;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| "a string is not UTF-8".into())
    }
    fn value(&mut self, ty: u32) -> Result<Value, String> {
        Ok(match ty {
            4 => Value::U32(self.u32()?),
            5 => Value::I32(self.u32()? as i32),
            6 => Value::F32(f32::from_bits(self.u32()?)),
            7 => Value::Bool(self.take(1)?[0] != 0),
            8 => Value::Str(self.string()?),
            9 => {
                let (inner, n) = (self.u32()?, self.len()?);
                match inner {
                    8 => Value::Strs((0..n).map(|_| self.string()).collect::<Result<_, _>>()?),
                    5 => Value::I32s(
                        (0..n)
                            .map(|_| self.u32().map(|x| x as i32))
                            .collect::<Result<_, _>>()?,
                    ),
                    other => return Err(format!("array of type {other} is not read here")),
                }
            }
            other => return Err(format!("metadata type {other} is not read here")),
        })
    }
}

/// Parses the header of a GGUF file written by [`GgufWriter`] (the value kinds it writes).
pub fn read(bytes: &[u8]) -> Result<GgufFile, String> {
    let mut c = Cursor { bytes, pos: 0 };
    if c.take(4)? != MAGIC {
        return Err("not a GGUF file (no GGUF magic)".into());
    }
    let version = c.u32()?;
    if version != VERSION {
        return Err(format!("GGUF version {version} (expected {VERSION})"));
    }
    let (n_tensors, n_kv) = (c.len()?, c.len()?);
    let mut metadata = Vec::new();
    for _ in 0..n_kv {
        let key = c.string()?;
        let ty = c.u32()?;
        metadata.push((key, c.value(ty)?));
    }
    let mut tensors = Vec::new();
    for _ in 0..n_tensors {
        let name = c.string()?;
        let n_dims = c.u32()? as usize;
        let dims = (0..n_dims).map(|_| c.u64()).collect::<Result<_, _>>()?;
        let ty = c.u32()?;
        let ty = GgmlType::from_u32(ty).ok_or_else(|| format!("tensor {name}: ggml type {ty}"))?;
        let offset = c.u64()?;
        tensors.push(TensorInfo {
            name,
            dims,
            ty,
            offset,
        });
    }
    let data_start = c.pos + pad_len(c.pos as u64) as usize;
    Ok(GgufFile {
        metadata,
        tensors,
        data_start,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_file_reads_back_with_aligned_tensors() {
        let mut w = GgufWriter::new();
        w.kv("general.architecture", Value::Str("gpt2".into()));
        w.kv("gpt2.block_count", Value::U32(2));
        w.kv("x.eps", Value::F32(1e-5));
        w.kv("x.flag", Value::Bool(true));
        w.kv(
            "tokenizer.ggml.tokens",
            Value::Strs(vec!["a".into(), "Ġb".into()]),
        );
        w.kv("tokenizer.ggml.token_type", Value::I32s(vec![1, 3]));
        let a: Vec<u8> = [1.0f32, 2.0, 3.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        w.tensor("a", &[3], GgmlType::F32, a.clone());
        w.tensor("b", &[2, 3], GgmlType::F16, vec![7u8; 12]);
        let mut bytes = Vec::new();
        w.write(&mut bytes).unwrap();
        assert_eq!(&bytes[..4], b"GGUF");
        let f = read(&bytes).unwrap();
        assert_eq!(f.data_start % ALIGNMENT, 0);
        assert_eq!(f.get("gpt2.block_count"), Some(&Value::U32(2)));
        assert_eq!(f.get("x.flag"), Some(&Value::Bool(true)));
        assert_eq!(
            f.get("tokenizer.ggml.tokens"),
            Some(&Value::Strs(vec!["a".into(), "Ġb".into()]))
        );
        assert_eq!(f.tensors[1].dims, vec![3, 2]); // innermost first
        assert_eq!(f.tensors[1].offset, 32);
        assert_eq!(f.tensor_bytes(&bytes, &f.tensors[0]), Some(&a[..]));
        assert_eq!(f.tensor_bytes(&bytes, &f.tensors[1]), Some(&[7u8; 12][..]));
        assert_eq!(bytes.len(), f.data_start + 32 + 32);
    }

    #[test]
    fn truncated_or_foreign_files_are_errors_not_panics() {
        let mut w = GgufWriter::new();
        w.kv("k", Value::Strs(vec!["abc".into()]));
        let mut bytes = Vec::new();
        w.write(&mut bytes).unwrap();
        for cut in 0..bytes.len() - 1 {
            let _ = read(&bytes[..cut]); // must not panic
        }
        assert!(read(b"PK\x03\x04rest").unwrap_err().contains("magic"));
    }
}
