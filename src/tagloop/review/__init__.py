"""The human review layer: policies that hold assignments back for a reviewer, the queue
they wait in, decisions (approve, reject, override), pins that survive recomputation,
labels for training and error rates (docs/reviews.md)."""
