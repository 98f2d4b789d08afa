//! The few TensorFlow protobuf messages a TensorBoard event file needs, declared with
//! `prost` (field numbers from `tensorflow/core/util/event.proto` and
//! `tensorflow/core/framework/{summary,tensor,tensor_shape}.proto`; no protoc needed).

/// `tensorflow.Event`: one record of an event file.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Event {
    /// Seconds since the Unix epoch.
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    /// The training step the event belongs to.
    #[prost(int64, tag = "2")]
    pub step: i64,
    /// `brain.Event:2` in the first record of a file.
    #[prost(string, optional, tag = "3")]
    pub file_version: Option<String>,
    /// Scalars and texts.
    #[prost(message, optional, tag = "5")]
    pub summary: Option<Summary>,
}

/// `tensorflow.Summary`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Summary {
    /// One value per tag.
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<SummaryValue>,
}

/// `tensorflow.Summary.Value`: a scalar (`simple_value`) or a tensor (text).
#[derive(Clone, PartialEq, prost::Message)]
pub struct SummaryValue {
    /// The series name, e.g. `loss/train`.
    #[prost(string, tag = "1")]
    pub tag: String,
    /// A scalar.
    #[prost(float, optional, tag = "2")]
    pub simple_value: Option<f32>,
    /// A text, as a string tensor.
    #[prost(message, optional, tag = "8")]
    pub tensor: Option<TensorProto>,
    /// Which TensorBoard plugin shows the value (`text` for texts).
    #[prost(message, optional, tag = "9")]
    pub metadata: Option<SummaryMetadata>,
}

/// `tensorflow.SummaryMetadata`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SummaryMetadata {
    /// The plugin.
    #[prost(message, optional, tag = "1")]
    pub plugin_data: Option<PluginData>,
}

/// `tensorflow.SummaryMetadata.PluginData`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PluginData {
    /// e.g. `text`.
    #[prost(string, tag = "1")]
    pub plugin_name: String,
    /// Plugin-specific bytes (empty for text).
    #[prost(bytes = "vec", tag = "2")]
    pub content: Vec<u8>,
}

/// `tensorflow.TensorProto`, only as far as a string tensor goes.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorProto {
    /// `DT_STRING` = 7.
    #[prost(int32, tag = "1")]
    pub dtype: i32,
    /// `[1]` for one text.
    #[prost(message, optional, tag = "2")]
    pub tensor_shape: Option<TensorShape>,
    /// The text, UTF-8.
    #[prost(bytes = "vec", repeated, tag = "8")]
    pub string_val: Vec<Vec<u8>>,
}

/// `tensorflow.TensorShapeProto`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorShape {
    /// One entry per dimension.
    #[prost(message, repeated, tag = "2")]
    pub dim: Vec<TensorDim>,
}

/// `tensorflow.TensorShapeProto.Dim`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TensorDim {
    /// The dimension's size.
    #[prost(int64, tag = "1")]
    pub size: i64,
}

/// `tensorflow.DataType.DT_STRING`.
pub const DT_STRING: i32 = 7;

impl Event {
    /// True when the event holds a value tagged `tag`.
    pub fn has_tag(&self, tag: &str) -> bool {
        self.summary
            .as_ref()
            .is_some_and(|s| s.value.iter().any(|v| v.tag == tag))
    }
}

impl SummaryValue {
    /// A scalar value.
    pub fn scalar(tag: &str, value: f32) -> SummaryValue {
        SummaryValue {
            tag: tag.into(),
            simple_value: Some(value),
            tensor: None,
            metadata: None,
        }
    }

    /// A text value, shown by TensorBoard's Text tab (markdown).
    pub fn text(tag: &str, text: &str) -> SummaryValue {
        SummaryValue {
            tag: tag.into(),
            simple_value: None,
            tensor: Some(TensorProto {
                dtype: DT_STRING,
                tensor_shape: Some(TensorShape {
                    dim: vec![TensorDim { size: 1 }],
                }),
                string_val: vec![text.as_bytes().to_vec()],
            }),
            metadata: Some(SummaryMetadata {
                plugin_data: Some(PluginData {
                    plugin_name: "text".into(),
                    content: Vec::new(),
                }),
            }),
        }
    }

    /// The text of a text value.
    pub fn text_value(&self) -> Option<String> {
        let t = self.tensor.as_ref()?;
        let bytes = t.string_val.first()?;
        Some(String::from_utf8_lossy(bytes).into_owned())
    }
}
