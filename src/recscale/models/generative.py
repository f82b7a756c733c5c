"""Generative retrieval over semantic IDs (TIGER, Rajput et al. 2023).

A history of items is read as the flat sequence of their code tokens (item 1's L' codes,
then item 2's, ...); a causal decoder from the ``ENCODERS`` registry predicts each next
token, and the next item is decoded as its L' codes by beam search that only follows
prefixes some real item has (models/semantic_ids.py ``CodeTrie``), so every answer is an item.

Shapes: ``B`` batch, ``N`` items per history, ``L'`` codes per item, ``T`` tokens,
``V`` token vocabulary, ``D`` model width.
"""

from __future__ import annotations

from dataclasses import asdict

import torch
import torch.nn.functional as F
from torch import nn

from recscale.models.attention import Attend
from recscale.models.base import embedding_table, refuse_item_dropout
from recscale.models.config import ModelConfig
from recscale.models.encoder import ENCODERS
from recscale.models.ranker import history_attend
from recscale.models.semantic_ids import CodeTrie, SemanticIds, item_tokens
from recscale.models.size import count_parameters

# Backbones whose positions count from the start of the row and that read no timestamps, so a
# decoded token sits where training put it. eSASRec's default positions count back from the
# end of the row, which moves with every decoded token.
GENERATIVE_BACKBONES = ("gpt", "hstu", "llama", "sasrec")


class SemanticIdRetriever(nn.Module):
    """Code-token embeddings + a causal encoder + a head tied to the token table.

    The logits at a position cover only the codes of the level that comes next there
    (position t holds level t mod L', so it predicts level (t + 1) mod L'); every other
    token's logit is -inf, so the cross-entropy is over that level's codes alone.

    Attributes:
        token_emb: [V, D], V = 1 + sum(level_sizes); row 0 = padding.
        codes: [num_items + 1, L'] persistent buffer, so a checkpoint holds its item codes.
    """

    def __init__(self, cfg: ModelConfig, sids: SemanticIds) -> None:
        super().__init__()
        refuse_item_dropout(cfg, "semantic-ID model")
        if cfg.backbone not in GENERATIVE_BACKBONES:
            raise ValueError(
                f"backbone {cfg.backbone!r} cannot decode semantic IDs; "
                f"allowed: {', '.join(GENERATIVE_BACKBONES)}"
            )
        # Item text reaches this model through its codes; side inputs have no token to ride on.
        if cfg.num_item_features or cfg.behaviour_levels or cfg.text_dim:
            raise ValueError(
                "SemanticIdRetriever reads no item features, item text or behaviours "
                "(set num_item_features, text_dim and behaviour_levels to 0 / empty)"
            )
        self.cfg = cfg
        self.level_sizes = sids.level_sizes
        self.level_offsets = sids.offsets
        self.levels = sids.num_levels
        self.num_items = sids.num_items
        self.vocab_size = sids.vocab_size
        # Room for cfg.max_len history items plus the item being decoded, in tokens.
        self.token_cfg = ModelConfig.model_validate(
            {**cfg.model_dump(), "max_len": (cfg.max_len + 1) * self.levels}
        )
        self.max_tokens = self.token_cfg.max_len
        token_table = (self.vocab_size, cfg.dim, cfg.init_std, cfg.item_init)
        self.token_emb = embedding_table(*token_table)
        self.out_emb = None if cfg.tied else embedding_table(*token_table)
        self.encoder = ENCODERS.get(cfg.backbone)(self.token_cfg)
        self._input_scale = self.encoder.input_scale(cfg)
        self.temperature = float(cfg.temperature)

        self.register_buffer("codes", torch.from_numpy(sids.codes.copy()))
        self.register_buffer("offsets", torch.tensor(self.level_offsets), persistent=False)
        token_level = torch.repeat_interleave(
            torch.arange(self.levels), torch.tensor(self.level_sizes)
        )
        token_level = torch.cat([torch.tensor([-1]), token_level])  # padding is no level
        self.register_buffer(
            "level_mask",
            token_level[None, :] == torch.arange(self.levels)[:, None],
            persistent=False,
        )  # [L', V]: the tokens of each level
        self._set_trie()
        # The trie is derived from `codes`: rebuild it when a checkpoint replaces them.
        self.register_load_state_dict_post_hook(lambda module, _: module._set_trie())

    def _set_trie(self) -> None:
        trie = CodeTrie.build(self.codes.cpu().numpy(), self.level_sizes)
        for level in range(self.levels):
            device = self.codes.device
            self.register_buffer(
                f"trie_keys_{level}", trie.keys[level].to(device), persistent=False
            )
            self.register_buffer(
                f"trie_children_{level}", trie.children[level].to(device), persistent=False
            )

    @property
    def trie(self) -> CodeTrie:
        """The valid prefixes, on the model's device."""
        keys = [getattr(self, f"trie_keys_{level}") for level in range(self.levels)]
        children = [getattr(self, f"trie_children_{level}") for level in range(self.levels)]
        return CodeTrie(keys=keys, children=children, level_sizes=self.level_sizes)

    def token_ids(self, items: torch.Tensor) -> torch.Tensor:
        """Item ids [B, N] (0 = padding) -> code tokens [B, N * L']."""
        return item_tokens(self.codes, self.offsets, items)

    def encode(self, tokens: torch.Tensor, attend: Attend | None = None) -> torch.Tensor:
        """Code tokens [B, T], right-padded with 0 and starting at an item's first code ->
        causal hidden states [B, T, D] (padded positions hold values nobody should read).
        With ``attend`` (backbones that support it) the tokens attend as it says instead,
        e.g. to cached history keys while decoding."""
        if tokens.shape[1] > self.max_tokens:
            raise ValueError(
                f"{tokens.shape[1]} tokens exceed {self.max_tokens} "
                f"((max_len + 1) * {self.levels} codes per item)"
            )
        x = self.token_emb(tokens) * self._input_scale
        if attend is None:
            return self.encoder(x, None, (tokens != 0).sum(1))
        return self.encoder(x, None, (tokens != 0).sum(1), attend=attend)

    def head(self, hidden: torch.Tensor, level: int | torch.Tensor) -> torch.Tensor:
        """hidden [..., D] -> logits [..., V] over the codes of ``level`` (an int, or level ids
        broadcasting against hidden's leading dims); other tokens get -inf."""
        table = (self.token_emb if self.out_emb is None else self.out_emb).weight
        if self.cfg.l2_norm:
            hidden = F.normalize(hidden, dim=-1, eps=1e-6)
            table = F.normalize(table, dim=-1, eps=1e-6)
        logits = hidden @ table.T / self.temperature
        return logits.masked_fill(~self.level_mask[level], float("-inf"))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Code tokens [B, T] -> next-token logits [B, T, V] (causal, level-masked)."""
        hidden = self.encode(tokens)
        next_level = (torch.arange(tokens.shape[1], device=tokens.device) + 1) % self.levels
        return self.head(hidden, next_level)

    def loss(self, items: torch.Tensor) -> torch.Tensor:
        """Next-token cross-entropy over every real code token after the first.

        items: [B, N] right-padded item ids, N <= max_len + 1 -> scalar (mean over tokens).
        """
        tokens = self.token_ids(items)
        logits = self(tokens[:, :-1])
        target = tokens[:, 1:]
        return F.cross_entropy(logits.flatten(0, 1).float(), target.flatten(), ignore_index=0)


def _decode(
    model: SemanticIdRetriever, items: torch.Tensor, lengths: torch.Tensor, beam: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Constrained beam search: histories [B, N], their token counts [B] -> the final beams'
    item ids [B, W] and summed log-probabilities [B, W] (W <= beam, sorted; -inf = dead)."""
    batch, levels, trie = items.shape[0], model.levels, model.trie
    # Each row's decoded codes follow its own last token; the last code is never fed back.
    seq = F.pad(model.token_ids(items), (0, levels - 1)).unsqueeze(1)  # [B, W, T]
    prefix = torch.zeros(batch, 1, dtype=torch.long, device=items.device)  # trie node ids
    score = torch.zeros(batch, 1, device=items.device)
    for level in range(levels):
        width, size = seq.shape[1], model.level_sizes[level]
        at = (lengths + level - 1).repeat_interleave(width)  # the position predicting `level`
        hidden = model.encode(seq.flatten(0, 1)[:, : int(at.max()) + 1])
        last = hidden[torch.arange(len(at), device=at.device), at]  # [B * W, D]
        first = 1 + model.level_offsets[level]
        logp = model.head(last, level).float().log_softmax(-1)[:, first : first + size]
        allowed, child = trie.expand(level, prefix.flatten())  # [B * W, size] each
        candidates = (score.reshape(-1, 1) + logp).masked_fill(~allowed, float("-inf"))
        score, pick = candidates.view(batch, width * size).topk(min(beam, width * size), dim=1)
        prefix = child.view(batch, width * size).gather(1, pick)
        parent = pick // size
        seq = seq.gather(1, parent[..., None].expand(-1, -1, seq.shape[-1]))
        if level + 1 < levels:
            token = (first + pick % size)[..., None]  # [B, W', 1]
            where = (lengths + level)[:, None, None].expand_as(token)
            seq = seq.scatter(2, where, token)
    return prefix, score


def _decode_cached(
    model: SemanticIdRetriever, items: torch.Tensor, lengths: torch.Tensor, beam: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_decode` with the history encoded once: each layer keeps its keys and values,
    and every later level runs only the beam's decoded tokens, attending to that cache and
    to each other causally. Needs a backbone with ``supports_attend``; same beams."""
    batch, levels, trie = items.shape[0], model.levels, model.trie
    tokens = model.token_ids(items)
    t, device = tokens.shape[1], items.device
    cache: list[tuple[torch.Tensor, torch.Tensor]] = []
    history = history_attend(lengths, t)
    history.store = cache
    hidden = model.encode(tokens, history)
    last = hidden[torch.arange(batch, device=device), lengths - 1]  # [B, D] predicts level 0
    decoded = torch.zeros(batch, 1, 0, dtype=torch.long, device=device)  # [B, W, level]
    prefix = torch.zeros(batch, 1, dtype=torch.long, device=device)
    score = torch.zeros(batch, 1, device=device)
    for level in range(levels):
        width, size = decoded.shape[1], model.level_sizes[level]
        if level > 0:
            rows = lengths.repeat_interleave(width)  # [B * W]
            positions = rows[:, None] + torch.arange(level, device=device)
            sees = torch.arange(t, device=device)[None, None, :] < rows[:, None, None]
            causal = torch.ones(level, level, dtype=torch.bool, device=device).tril()
            mask = torch.cat([sees.expand(-1, level, -1), causal.expand(len(rows), -1, -1)], dim=-1)
            keys = torch.cat([torch.arange(t, device=device).expand(len(rows), t), positions], 1)
            past = [
                (k.repeat_interleave(width, 0), v.repeat_interleave(width, 0)) for k, v in cache
            ]
            state = model.encode(decoded.flatten(0, 1), Attend(mask, positions, keys, past))
            last = state[:, -1]
        first = 1 + model.level_offsets[level]
        logp = model.head(last, level).float().log_softmax(-1)[:, first : first + size]
        allowed, child = trie.expand(level, prefix.flatten())
        candidates = (score.reshape(-1, 1) + logp).masked_fill(~allowed, float("-inf"))
        score, pick = candidates.view(batch, width * size).topk(min(beam, width * size), dim=1)
        prefix = child.view(batch, width * size).gather(1, pick)
        parent = decoded.gather(1, (pick // size)[..., None].expand(-1, -1, level))
        decoded = torch.cat([parent, (first + pick % size)[..., None]], dim=-1)
    return prefix, score


@torch.no_grad()
def beam_search(
    model: SemanticIdRetriever,
    items: torch.Tensor,
    beam: int,
    topk: int,
    exclude: torch.Tensor | None = None,
    cached: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``topk`` most likely next items of each history, decoded code by code.

    Every step keeps the ``beam`` best prefixes that some real item has, scored by the sum of
    their codes' log-probabilities, so only real items come out, each at most once. Items in
    ``exclude`` (e.g. the history itself) are dropped from the final beams, which can leave
    fewer than ``topk``: decode with a beam wider than topk. Runs in eval mode (no dropout).
    ``cached`` (default: when the backbone supports it) encodes the history once and keeps
    its keys and values (:func:`_decode_cached`); otherwise the whole sequence is encoded
    again at every level (:func:`_decode`, the reference).

    Args:
        items: [B, N] history item ids, right-padded with 0; every row needs one item.
        beam: prefixes kept per row and level.
        topk: items returned per row.
        exclude: [B, K] item ids never to return (0 = padding), or None.

    Returns:
        item ids [B, topk] int64 and scores [B, topk], best first; missing answers are
        item 0 with score -inf.
    """
    if beam < 1 or topk < 1:
        raise ValueError(f"beam and topk must be >= 1, got {beam} and {topk}")
    lengths = (items != 0).sum(1) * model.levels
    if (lengths == 0).any():
        raise ValueError("every history needs at least one item to condition on")
    was_training = model.training
    model.eval()
    try:
        if cached is None:
            cached = model.encoder.supports_attend
        found, score = (_decode_cached if cached else _decode)(model, items, lengths, beam)
    finally:
        model.train(was_training)
    if exclude is not None:
        banned = (found[:, :, None] == exclude[:, None, :].to(found.device)).any(-1)
        score = score.masked_fill(banned, float("-inf"))
    score, order = score.sort(dim=1, descending=True, stable=True)
    found = found.gather(1, order).masked_fill(score == float("-inf"), 0)
    missing = topk - found.shape[1]
    if missing > 0:
        found = F.pad(found, (0, missing), value=0)
        score = F.pad(score, (0, missing), value=float("-inf"))
    return found[:, :topk], score[:, :topk]


def num_params(model: nn.Module) -> dict[str, int]:
    """Non-embedding and embedding (token and position tables) parameters, size.py's rules."""
    return asdict(count_parameters(model))
