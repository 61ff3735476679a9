"""The model of the text example: a tiny BERT classifying which language a text is in.

``transformers.BertForSequenceClassification`` with a small random-init
config, wrapped so that its forward takes the tokenizer's outputs as
positional tensors (the order of ``[model.text] inputs`` in ninefit.toml) and
returns the logits alone, as ONNX export wants.
"""

import torch
from torch import nn

LANGUAGES = ("en_US", "de_DE", "it_IT", "nl_BE", "pl_PL")
VOCAB_SIZE = 3000
MAX_LENGTH = 256


class TextClassifier(nn.Module):
    def __init__(self, vocab_size: int = VOCAB_SIZE, hidden: int = 64, layers: int = 2, heads: int = 2,
                 max_length: int = MAX_LENGTH, num_labels: int = len(LANGUAGES)):
        super().__init__()
        from transformers import BertConfig, BertForSequenceClassification

        config = BertConfig(
            vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
            intermediate_size=2 * hidden, max_position_embeddings=max_length, num_labels=num_labels,
            hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, attn_implementation="eager",
        )
        self.bert = BertForSequenceClassification(config)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.bert(input_ids=input_ids, attention_mask=attention_mask).logits


def make_model(**kwargs) -> nn.Module:
    return TextClassifier(**kwargs)
