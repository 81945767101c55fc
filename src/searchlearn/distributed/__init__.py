"""Scale-out on Ray: policy replicas as actors that run a searcher, an evaluation or RL sampling on a shard of the
problems (pool.py), weights pushed to them after every learner update (weights.py), and the one entry point the
stages call, `map_problems` (shard.py), which runs in-process when no pool is active."""
