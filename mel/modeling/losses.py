"""In-batch sampled softmax (Gillick et al. 2018), as a short pipeline.

scores -> scale -> mask accidental hits and padding -> softmax cross-entropy against the gold
column. Candidates are every gold entity of the global batch (all replicas) plus any hard
negatives; a candidate that is the same entity as a query's gold one, in another column, is an
"accidental hit" and is removed from that query's softmax.
"""
import tensorflow as tf

# Masked logits get this value: far below any real logit (|scale * cosine| <= scale), and
# finite, so the softmax stays NaN-free in float32 and bfloat16.
MASKED_LOGIT = -1e9


def in_batch_softmax_loss(queries, candidates, labels, query_ids, candidate_ids, scale,
                          candidate_mask=None):
  """Per-query softmax cross-entropy over all candidates.

  Args:
    queries: float [B, D], unit vectors.
    candidates: float [C, D], unit vectors.
    labels: int32 [B], the column of each query's gold entity in `candidates`.
    query_ids: int32 [B], an id of each query's gold entity (entity hash).
    candidate_ids: int32 [C], the id of each candidate's entity.
    scale: the inverse temperature; logits = scale * cosine.
    candidate_mask: optional bool [C]; False marks padding (a missing hard negative).
  Returns:
    (loss [B], logits [B, C] after masking).
  """
  logits = scale * tf.matmul(queries, candidates, transpose_b=True)          # [B, C]
  num_candidates = tf.shape(candidates)[0]
  gold = tf.one_hot(labels, num_candidates, on_value=True, off_value=False)  # [B, C]
  same_entity = tf.equal(query_ids[:, None], candidate_ids[None, :])         # [B, C]
  masked = tf.logical_and(same_entity, tf.logical_not(gold))
  if candidate_mask is not None:
    masked = tf.logical_or(masked, tf.logical_not(candidate_mask)[None, :])
  logits = tf.where(masked, tf.cast(MASKED_LOGIT, logits.dtype), logits)
  loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
  return loss, logits


def in_batch_accuracy(logits, labels):
  """float32 [B]: 1 where the gold column has the highest logit."""
  predicted = tf.argmax(logits, axis=-1, output_type=tf.int32)
  return tf.cast(tf.equal(predicted, labels), tf.float32)


def gather_candidates(gold, gold_ids, negatives=None, negative_ids=None, negative_mask=None):
  """The global candidate set, assembled inside a replica context.

  Every replica contributes its gold entities (and hard negatives); all_gather makes each
  mention see the whole global batch (its gradient flows back to the replica that owns the
  vector), so R replicas of B mentions each train like one device with R*B.

  Args:
    gold: float [B, D], this replica's gold entity vectors.
    gold_ids: int32 [B].
    negatives: optional float [N, D] hard-negative vectors of this replica (N = B * K).
    negative_ids: int32 [N]; negative_mask: bool [N] (False: padding).
  Returns:
    candidates [C, D], candidate_ids [C], candidate_mask [C] bool, labels [B] int32,
    where C = R * B (+ R * N) and the golds of all replicas come first.
  """
  context = tf.distribute.get_replica_context()
  batch_size = tf.shape(gold)[0]
  all_gold = context.all_gather(gold, axis=0)                                   # [R*B, D]
  all_gold_ids = context.all_gather(gold_ids, axis=0)
  replica = tf.cast(context.replica_id_in_sync_group, tf.int32)
  labels = replica * batch_size + tf.range(batch_size, dtype=tf.int32)          # [B]
  mask = tf.ones_like(all_gold_ids, dtype=tf.bool)
  if negatives is None:
    return all_gold, all_gold_ids, mask, labels
  all_negatives = context.all_gather(negatives, axis=0)                         # [R*N, D]
  all_negative_ids = context.all_gather(negative_ids, axis=0)
  # Collectives move numbers, not bools.
  all_negative_mask = context.all_gather(tf.cast(negative_mask, tf.int32), axis=0) > 0
  return (tf.concat([all_gold, all_negatives], axis=0),
          tf.concat([all_gold_ids, all_negative_ids], axis=0),
          tf.concat([mask, all_negative_mask], axis=0),
          labels)


# ---------------------------------------------------------------------------------------------
# Candidate-set losses: each mention's own candidates, the gold in column 0 (the reranker's
# training; the dual encoder's distillation from it).


def _gold_column(mask):
  """bool [B, C]: True in column 0."""
  return tf.one_hot(tf.zeros(tf.shape(mask)[:1], tf.int32), tf.shape(mask)[1],
                    on_value=True, off_value=False)


def candidate_bce_loss(logits, mask):
  """The paper's binary cross-entropy (Sec. 5.5.2): every valid pair is classified on its own,
  the gold as 1, the others as 0; the mean over a mention's valid candidates.

  Args:
    logits: float [B, C], the gold in column 0.
    mask: bool [B, C], False for padding (column 0 is always valid).
  Returns:
    float32 [B].
  """
  logits = tf.cast(logits, tf.float32)
  labels = tf.cast(_gold_column(mask), tf.float32)
  per_pair = tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)
  valid = tf.cast(mask, tf.float32)
  return tf.reduce_sum(per_pair * valid, axis=1) / tf.maximum(tf.reduce_sum(valid, axis=1), 1.0)


def candidate_softmax_loss(logits, mask):
  """BLINK's loss: softmax cross-entropy over a mention's valid candidates, the gold the label.

  Args: as candidate_bce_loss. Returns float32 [B].
  """
  logits = tf.where(mask, tf.cast(logits, tf.float32), MASKED_LOGIT)
  labels = tf.zeros(tf.shape(logits)[:1], tf.int32)
  return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)


def gold_first_accuracy(logits, mask):
  """float32 [B]: 1 where column 0 (the gold) scores strictly above every other valid column
  (a tie counts as a miss, so a constant scorer gets 0)."""
  logits = tf.cast(logits, tf.float32)
  others = tf.logical_and(mask, tf.logical_not(_gold_column(mask)))
  best_other = tf.reduce_max(tf.where(others, logits, MASKED_LOGIT), axis=1)
  return tf.cast(logits[:, 0] > best_other, tf.float32)


def distillation_loss(student_logits, teacher_logits, mask, temperature=1.0):
  """Knowledge distillation over each mention's candidates (Hinton et al. 2015; BLINK Sec. 4):
  T^2 x KL(softmax(teacher / T) || softmax(student / T)) over the valid candidates.

  Args:
    student_logits, teacher_logits: float [B, C] over the same candidates.
    mask: bool [B, C], False for padding.
    temperature: T > 0; T^2 keeps the gradients' scale as T changes.
  Returns:
    float32 [B]. Gradients reach the student only: the teacher's logits are targets.
  """
  t = tf.cast(temperature, tf.float32)
  teacher_logits = tf.stop_gradient(tf.cast(teacher_logits, tf.float32))
  student = tf.where(mask, tf.cast(student_logits, tf.float32) / t, MASKED_LOGIT)
  teacher = tf.where(mask, teacher_logits / t, MASKED_LOGIT)
  p_teacher = tf.nn.softmax(teacher, axis=1)
  kl = p_teacher * (tf.nn.log_softmax(teacher, axis=1) - tf.nn.log_softmax(student, axis=1))
  return t * t * tf.reduce_sum(tf.where(mask, kl, 0.0), axis=1)


def own_candidate_logits(logits, labels, num_negatives):
  """Each mention's logits for its own candidates, picked out of the in-batch logits.

  Args:
    logits: float [B, C], in_batch_softmax_loss's over gather_candidates' columns: the R*B
      golds of all replicas, then the R*B*K hard negatives, replica by replica, mention b's K
      negatives in a row.
    labels: int32 [B], each mention's gold column (replica * B + b).
    num_negatives: K, hard negatives per mention (> 0).
  Returns:
    float [B, 1 + K]: column 0 the mention's gold, then its own K hard negatives in order
    (the same values the softmax saw; padded negatives hold MASKED_LOGIT).
  """
  batch = tf.shape(labels)[0]
  replicas = tf.shape(logits)[1] // (batch * (1 + num_negatives))
  replica = labels[0] // batch
  first = replicas * batch + replica * batch * num_negatives                 # this replica's
  negatives = first + tf.range(batch)[:, None] * num_negatives + tf.range(num_negatives)[None]
  columns = tf.concat([labels[:, None], negatives], axis=1)                  # [B, 1 + K]
  return tf.gather(logits, columns, axis=1, batch_dims=1)


# ---------------------------------------------------------------------------------------------
# Multi-label type prediction (model.typing; mel.modeling.typed_tower): each pair's gold
# entity's types are the target of both the mention's and the entity's type classifier.


def multi_label_type_loss(logits, targets, mask):
  """The paper's type loss (Sec. 3.2.2): binary cross-entropy of every type, summed over the
  types; 0 for a pair whose entity has no type in the vocabulary (mask False).

  Args:
    logits: float [B, T].
    targets: float or bool [B, T], the multi-hot types of each pair's gold entity.
    mask: bool [B], False where the gold entity has no type (nothing to learn from).
  Returns:
    float32 [B].
  """
  per_type = tf.nn.sigmoid_cross_entropy_with_logits(
      labels=tf.cast(targets, tf.float32), logits=tf.cast(logits, tf.float32))
  return tf.where(mask, tf.reduce_sum(per_type, axis=1), 0.0)


def multi_label_counts(logits, targets, mask):
  """Per-pair true positives, false positives and false negatives of the types predicted at
  probability > 0.5 (logit > 0); zeros where mask is False. Summed over pairs (and steps),
  they give the micro-F1 2 TP / (2 TP + FP + FN).

  Args: as multi_label_type_loss. Returns (tp, fp, fn), float32 [B] each.
  """
  predicted = tf.cast(logits, tf.float32) > 0.0
  gold = tf.cast(targets, tf.bool)
  valid = tf.cast(mask, tf.float32)

  def count(hits):
    return tf.reduce_sum(tf.cast(hits, tf.float32), axis=1) * valid

  return (count(tf.logical_and(predicted, gold)),
          count(tf.logical_and(predicted, tf.logical_not(gold))),
          count(tf.logical_and(tf.logical_not(predicted), gold)))
