//! The GPT-2 naming contract shared by export and import.
//!
//! lmforge stores parameters under nanoGPT's `state_dict` names, which are Hugging Face
//! `GPT2LMHeadModel`'s names too (`transformer.wte.weight`, `transformer.h.{i}.attn.c_attn.weight`,
//! …, `lm_head.weight`). The one difference is layout: nanoGPT's projections are
//! `nn.Linear` (`[out, in]`) while GPT-2's are `Conv1D` (`[in, out]`), so those four
//! weights are transposed on the way across.

/// Name suffixes of the weights GPT-2 stores as `Conv1D` (`[in, out]`).
pub const CONV1D_WEIGHTS: [&str; 4] = [
    "attn.c_attn.weight",
    "attn.c_proj.weight",
    "mlp.c_fc.weight",
    "mlp.c_proj.weight",
];

/// Whether the tensor `name` is a `Conv1D` weight in GPT-2 (transposed relative to nanoGPT).
pub fn is_conv1d_weight(name: &str) -> bool {
    name.starts_with("transformer.h.") && CONV1D_WEIGHTS.iter().any(|s| name.ends_with(s))
}

/// Transposes a row-major `[rows, cols]` matrix into `[cols, rows]`.
pub fn transpose(data: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    debug_assert_eq!(data.len(), rows * cols);
    let mut out = vec![0.0f32; data.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = data[r * cols + c];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conv1d_weights_are_the_four_projections() {
        assert!(is_conv1d_weight("transformer.h.0.attn.c_attn.weight"));
        assert!(is_conv1d_weight("transformer.h.11.mlp.c_proj.weight"));
        assert!(!is_conv1d_weight("transformer.h.0.attn.c_attn.bias"));
        assert!(!is_conv1d_weight("transformer.wte.weight"));
        assert!(!is_conv1d_weight("lm_head.weight"));
    }

    #[test]
    fn transpose_moves_each_element() {
        // [2, 3] → [3, 2]
        let m = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        assert_eq!(transpose(&m, 2, 3), vec![1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
        assert_eq!(transpose(&transpose(&m, 2, 3), 3, 2), m.to_vec());
    }
}
