package io.statebackend;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.flink.api.common.state.CheckpointListener;
import org.apache.flink.api.common.state.ListState;
import org.apache.flink.api.common.state.ListStateDescriptor;
import org.apache.flink.runtime.state.FunctionInitializationContext;
import org.apache.flink.runtime.state.FunctionSnapshotContext;
import org.apache.flink.streaming.api.checkpoint.CheckpointedFunction;

/**
 * An exactly-once test sink (run it at parallelism 1): records are buffered, kept in operator state
 * with the checkpoint that covers them, and committed to {@link #committed} when that checkpoint
 * completes (or, after a failure, when the job restores the checkpoint that holds them). Commits
 * are idempotent per checkpoint id, so the committed output is what an exactly-once system
 * delivers: records emitted after the last completed checkpoint and replayed after a failure appear
 * once.
 */
final class CommittingSink implements TestSink<String>, CheckpointedFunction, CheckpointListener {
    private static final long serialVersionUID = 1L;

    /** Committed records by channel (one per test run), then by checkpoint id. */
    static final Map<String, Map<Long, List<String>>> COMMITTED = new ConcurrentHashMap<>();

    private final String channel;
    private transient List<String> current;
    private transient TreeMap<Long, List<String>> pending;
    private transient ListState<String> state;

    CommittingSink(String channel) {
        this.channel = channel;
    }

    /** Everything committed on {@code channel}, in commit order. */
    static List<String> committed(String channel) {
        List<String> all = new ArrayList<>();
        new TreeMap<>(COMMITTED.getOrDefault(channel, Map.of())).values().forEach(all::addAll);
        return all;
    }

    static void reset(String channel) {
        COMMITTED.remove(channel);
    }

    @Override
    public void invoke(String value, Context context) {
        current.add(value);
    }

    @Override
    public void snapshotState(FunctionSnapshotContext context) throws Exception {
        pending.put(context.getCheckpointId(), current);
        current = new ArrayList<>();
        List<String> entries = new ArrayList<>();
        for (Map.Entry<Long, List<String>> e : pending.entrySet()) {
            for (String record : e.getValue()) {
                entries.add(e.getKey() + "|" + record);
            }
        }
        state.update(entries);
    }

    @Override
    public void initializeState(FunctionInitializationContext context) throws Exception {
        current = new ArrayList<>();
        pending = new TreeMap<>();
        state =
                context.getOperatorStateStore()
                        .getListState(new ListStateDescriptor<>("pending", String.class));
        TreeMap<Long, List<String>> restored = new TreeMap<>();
        for (String entry : state.get()) {
            int bar = entry.indexOf('|');
            restored.computeIfAbsent(
                            Long.parseLong(entry.substring(0, bar)), k -> new ArrayList<>())
                    .add(entry.substring(bar + 1));
        }
        // Every restored entry belongs to a checkpoint no newer than the restored one: complete.
        restored.forEach(this::commit);
    }

    @Override
    public void notifyCheckpointComplete(long checkpointId) {
        Map<Long, List<String>> done = pending.headMap(checkpointId, true);
        done.forEach(this::commit);
        done.clear();
    }

    private void commit(long checkpointId, List<String> records) {
        COMMITTED
                .computeIfAbsent(channel, c -> new ConcurrentHashMap<>())
                .putIfAbsent(checkpointId, List.copyOf(records));
    }
}
