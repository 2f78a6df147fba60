package io.statebackend;

import static org.assertj.core.api.Assertions.assertThat;

import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.atomic.AtomicBoolean;
import org.apache.flink.api.common.JobExecutionResult;
import org.apache.flink.api.common.state.CheckpointListener;
import org.apache.flink.api.common.state.ListState;
import org.apache.flink.api.common.state.ListStateDescriptor;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.client.program.ClusterClient;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.RestartStrategyOptions;
import org.apache.flink.runtime.checkpoint.CheckpointFailureManager;
import org.apache.flink.runtime.state.FunctionInitializationContext;
import org.apache.flink.runtime.state.FunctionSnapshotContext;
import org.apache.flink.runtime.testutils.MiniClusterResourceConfiguration;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.JsonNode;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.flink.streaming.api.checkpoint.CheckpointedFunction;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.test.junit5.InjectClusterClient;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.apache.flink.util.Collector;
import org.apache.logging.log4j.LogManager;
import org.apache.logging.log4j.core.LogEvent;
import org.apache.logging.log4j.core.appender.AbstractAppender;
import org.apache.logging.log4j.core.config.Property;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * NativeMemoryBackend's size limit in a running job: checkpoints succeed while the state is small;
 * then a list state grows past the limit and checkpoints are declined (tolerated, so the job is not
 * failed); a failure injected while they are declined restarts the job from the last good
 * checkpoint; once the list is cleared, checkpoints succeed again and the job finishes. The
 * committed output of an exactly-once sink must equal the expected result, and Flink's checkpoint
 * statistics (REST) must show the declined checkpoints, and the JobManager's log their cause: the
 * native backend's message naming the state, its size and the limit.
 */
class MemoryLimitMiniClusterTest {
    private static final int EVENTS = 3000;
    private static final int KEYS = 10;

    /** Events in [BIG_FROM, BIG_TO) add a payload to their key's list. */
    private static final long BIG_FROM = 1000;

    private static final long BIG_TO = 2000;
    private static final int PAYLOAD = 100;
    private static final int LIMIT = 16 * 1024;
    private static final String CHANNEL = "memory-limit";

    @RegisterExtension
    static final MiniClusterExtension CLUSTER =
            new MiniClusterExtension(
                    new MiniClusterResourceConfiguration.Builder()
                            .setNumberTaskManagers(1)
                            .setNumberSlotsPerTaskManager(2)
                            .build());

    static final AtomicBoolean failed = new AtomicBoolean();
    static final AtomicBoolean declineSeen = new AtomicBoolean();

    @Test
    void checkpointsOverTheLimitAreDeclinedAndTheJobGoesOn(
            @InjectClusterClient ClusterClient<?> client) throws Exception {
        CommittingSink.reset(CHANNEL);
        failed.set(false);
        declineSeen.set(false);
        Configuration conf = new Configuration();
        conf.set(RestartStrategyOptions.RESTART_STRATEGY, "fixed-delay");
        conf.set(RestartStrategyOptions.RESTART_STRATEGY_FIXED_DELAY_ATTEMPTS, 3);
        conf.set(RestartStrategyOptions.RESTART_STRATEGY_FIXED_DELAY_DELAY, Duration.ofMillis(100));
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(conf);
        env.setParallelism(2);
        env.setMaxParallelism(128);
        env.enableCheckpointing(200);
        env.getCheckpointConfig().setTolerableCheckpointFailureNumber(Integer.MAX_VALUE);
        TestJobs.setStateBackend(env, new NativeMemoryBackend(LIMIT));

        env.addSource(new GatedSource())
                .setParallelism(1)
                .keyBy(i -> (int) (i % KEYS))
                .process(new GrowingState())
                .addSink(new CommittingSink(CHANNEL))
                .setParallelism(1);
        // Flink's checkpoint statistics keep only the top-level message of a declined
        // checkpoint ("Asynchronous task checkpoint failed."); the cause, with the native
        // backend's message, is in the JobManager's CheckpointFailureManager warnings.
        List<String> declines = new CopyOnWriteArrayList<>();
        org.apache.logging.log4j.core.Logger failureLog =
                (org.apache.logging.log4j.core.Logger)
                        LogManager.getLogger(CheckpointFailureManager.class);
        AbstractAppender capture =
                new AbstractAppender("declines", null, null, true, Property.EMPTY_ARRAY) {
                    @Override
                    public void append(LogEvent event) {
                        for (Throwable t = event.getThrown(); t != null; t = t.getCause()) {
                            declines.add(String.valueOf(t.getMessage()));
                        }
                    }
                };
        capture.start();
        failureLog.addAppender(capture);
        JobExecutionResult result;
        try {
            result = env.execute("memory backend size limit");
        } finally {
            failureLog.removeAppender(capture);
            capture.stop();
        }

        assertThat(failed).as("a failure was injected while checkpoints were declined").isTrue();
        List<String> actual = new ArrayList<>(CommittingSink.committed(CHANNEL));
        actual.sort(null);
        assertThat(actual).isEqualTo(expected());

        HttpResponse<String> response =
                HttpClient.newHttpClient()
                        .send(
                                HttpRequest.newBuilder(
                                                URI.create(
                                                        client.getWebInterfaceURL()
                                                                + "/jobs/"
                                                                + result.getJobID()
                                                                + "/checkpoints"))
                                        .build(),
                                HttpResponse.BodyHandlers.ofString());
        JsonNode stats = new ObjectMapper().readTree(response.body());
        assertThat(stats.at("/counts/failed").asLong()).as("declined checkpoints").isPositive();
        assertThat(stats.at("/counts/completed").asLong()).isGreaterThanOrEqualTo(2);
        // The injected failure restarted the job from a good checkpoint.
        assertThat(stats.at("/counts/restored").asLong()).isEqualTo(1);
        // Not asserted: the REST "latest failed" message, which may be a checkpoint the
        // restart aborted ("Checkpoint Coordinator is suspending.") rather than a decline.
        assertThat(declines)
                .anySatisfy(
                        m ->
                                assertThat(m)
                                        .containsPattern(
                                                "checkpoint \\d+ declined: state 'list' is \\d+"
                                                        + " bytes, over the memory backend's limit"
                                                        + " of "
                                                        + LIMIT
                                                        + " bytes per state"));
    }

    static List<String> expected() {
        List<String> expected = new ArrayList<>();
        for (int key = 0; key < KEYS; key++) {
            long sum = 0;
            int count = 0;
            int payloads = 0;
            for (long i = key; i < EVENTS; i += KEYS) {
                sum += i;
                count++;
                if (i >= BIG_FROM && i < BIG_TO) {
                    payloads++;
                }
            }
            expected.add(describe(key, count, sum, payloads, payloads));
        }
        expected.sort(null);
        return expected;
    }

    static String describe(int key, int count, long sum, int payloads, int cleared) {
        return key
                + ": count="
                + count
                + " sum="
                + sum
                + " payloads="
                + payloads
                + " cleared="
                + cleared;
    }

    /**
     * Emits 0..EVENTS-1, its offset in operator state. Waits for a completed checkpoint before the
     * state grows, and for a declined one before it shrinks; the first time it sees a declined
     * checkpoint, it fails the job.
     */
    static final class GatedSource
            implements TestSource<Long>, CheckpointedFunction, CheckpointListener {
        private volatile boolean running = true;
        private volatile boolean completed;
        private volatile boolean aborted;
        private long next;
        private transient ListState<Long> offset;

        @Override
        public void run(SourceContext<Long> ctx) throws Exception {
            while (running && next < EVENTS) {
                if (next == BIG_FROM) {
                    while (running && !completed) {
                        Thread.sleep(5);
                    }
                }
                if (next == BIG_TO) {
                    while (running && !aborted) {
                        Thread.sleep(5);
                    }
                    declineSeen.set(true);
                    if (failed.compareAndSet(false, true)) {
                        throw new RuntimeException("injected failure while over the limit");
                    }
                }
                synchronized (ctx.getCheckpointLock()) {
                    ctx.collect(next++);
                }
                if (next % 5 == 0) {
                    Thread.sleep(1);
                }
            }
        }

        @Override
        public void cancel() {
            running = false;
        }

        @Override
        public void notifyCheckpointComplete(long checkpointId) {
            completed = true;
        }

        @Override
        public void notifyCheckpointAborted(long checkpointId) {
            aborted = true;
        }

        @Override
        public void snapshotState(FunctionSnapshotContext context) throws Exception {
            offset.update(List.of(next));
        }

        @Override
        public void initializeState(FunctionInitializationContext context) throws Exception {
            offset =
                    context.getOperatorStateStore()
                            .getListState(new ListStateDescriptor<>("offset", Long.class));
            for (Long o : offset.get()) {
                next = o;
            }
        }
    }

    /**
     * Counts and sums per key; events in [BIG_FROM, BIG_TO) add a payload to a list state, cleared
     * at the key's first event after; emits the key's result at its last event.
     */
    static final class GrowingState extends KeyedProcessFunction<Integer, Long, String> {
        private transient ValueState<Integer> count;
        private transient ValueState<Long> sum;
        private transient ValueState<Integer> payloads;
        private transient ValueState<Integer> cleared;
        private transient ListState<String> list;

        @Override
        public void open(org.apache.flink.api.common.functions.OpenContext ctx) {
            count =
                    getRuntimeContext()
                            .getState(new ValueStateDescriptor<>("count", Integer.class));
            sum = getRuntimeContext().getState(new ValueStateDescriptor<>("sum", Long.class));
            payloads =
                    getRuntimeContext()
                            .getState(new ValueStateDescriptor<>("payloads", Integer.class));
            cleared =
                    getRuntimeContext()
                            .getState(new ValueStateDescriptor<>("cleared", Integer.class));
            list =
                    getRuntimeContext()
                            .getListState(new ListStateDescriptor<>("list", String.class));
        }

        @Override
        public void processElement(Long value, Context ctx, Collector<String> out)
                throws Exception {
            int n = count.value() == null ? 1 : count.value() + 1;
            count.update(n);
            sum.update(sum.value() == null ? value : sum.value() + value);
            if (value >= BIG_FROM && value < BIG_TO) {
                list.add(String.valueOf(value).repeat(PAYLOAD / 4 + 1).substring(0, PAYLOAD));
                payloads.update(payloads.value() == null ? 1 : payloads.value() + 1);
            } else if (value >= BIG_TO && cleared.value() == null) {
                int size = 0;
                for (String s : list.get()) {
                    size++;
                }
                cleared.update(size);
                list.clear();
            }
            if (value >= EVENTS - KEYS) {
                out.collect(
                        describe(
                                ctx.getCurrentKey(),
                                n,
                                sum.value(),
                                payloads.value(),
                                cleared.value()));
            }
        }
    }
}
