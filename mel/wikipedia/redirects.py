"""Following redirect pages to the article they lead to: one rule for the mining pipeline (one
hop per CoGroupByKey) and the Mewsli-9 extractor (a dict in memory).

A chain fails when a redirect leads out of the article namespace, comes back to a title it
passed, or needs more than max_hops hops.
"""
from typing import Sequence, Tuple

REDIRECT_TO_NON_ARTICLE = "redirect_to_non_article"
REDIRECT_LOOP = "redirect_loop"
REDIRECT_CHAIN_TOO_LONG = "redirect_chain_too_long"

Key = Tuple[str, str]   # (wiki, normalised title)


def next_hop(key: Key, target: str, visited: Sequence[Key], hops: int, max_hops: int):
  """One step at redirect page key (target: its article title, "" if it leads elsewhere).

  visited: the titles the chain passed before key, its start first; hops: hops taken to
  reach key. Returns ("follow", next key) or ("fail", reason, detail).
  """
  if not target:
    return "fail", REDIRECT_TO_NON_ARTICLE, ""
  nxt = (key[0], target)
  if nxt in visited or nxt == key:
    return "fail", REDIRECT_LOOP, " -> ".join(t for _, t in tuple(visited) + (key,))
  if hops >= max_hops:
    return "fail", REDIRECT_CHAIN_TOO_LONG, f"more than {max_hops} hops"
  return "follow", nxt


def follow(key: Key, redirects, max_hops: int):
  """(wiki, title) -> ("ok", final key, hops) | ("fail", reason, detail), where redirects maps
  each redirect page's key to its target title ("" when it leads out of the articles)."""
  visited, hops = [], 0
  while key in redirects:
    step = next_hop(key, redirects[key], visited, hops, max_hops)
    if step[0] == "fail":
      return step
    visited.append(key)
    key = step[1]
    hops += 1
  return "ok", key, hops
