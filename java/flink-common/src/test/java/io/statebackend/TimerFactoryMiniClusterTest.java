package io.statebackend;

import static org.assertj.core.api.Assertions.assertThat;

import io.statebackend.RescalingMiniClusterTest.PhaseSource;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import org.apache.flink.api.common.JobID;
import org.apache.flink.client.program.ClusterClient;
import org.apache.flink.core.execution.SavepointFormatType;
import org.apache.flink.runtime.jobgraph.JobGraph;
import org.apache.flink.runtime.jobgraph.SavepointRestoreSettings;
import org.apache.flink.runtime.jobmaster.JobResult;
import org.apache.flink.runtime.testutils.MiniClusterResourceConfiguration;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.test.junit5.InjectClusterClient;
import org.apache.flink.test.junit5.MiniClusterExtension;
import org.apache.flink.util.Collector;
import org.junit.jupiter.api.extension.RegisterExtension;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Event-time timers through savepoints on NativeRocksDBBackend while the timer service changes
 * between native timers ({@code timer-service.factory: ROCKSDB}) and Flink's heap queues ({@code
 * HEAP}) and the job rescales 2 → 3 → 2 → 1: ROCKSDB → HEAP → ROCKSDB → HEAP, in native and in
 * canonical savepoints. Every record registers a timer at its own number; no watermark passes until
 * the last phase ends, so every timer must fire exactly once, at the end, from Flink's heap queues.
 */
class TimerFactoryMiniClusterTest {
    private static final int KEYS = 37;
    private static final long[] PHASE_END = {1000, 2000, 3000, 3000};
    private static final int[] PARALLELISM = {2, 3, 2, 1};
    private static final String[] FACTORY = {"ROCKSDB", "HEAP", "ROCKSDB", "HEAP"};

    @RegisterExtension
    static final MiniClusterExtension CLUSTER =
            new MiniClusterExtension(
                    new MiniClusterResourceConfiguration.Builder()
                            .setNumberTaskManagers(1)
                            .setNumberSlotsPerTaskManager(4)
                            .build());

    static final AtomicLong registered = new AtomicLong();
    static final Map<Long, Integer> fired = new ConcurrentHashMap<>();
    static final List<Long> duplicates = new ArrayList<>();

    @ParameterizedTest
    @EnumSource(
            value = SavepointFormatType.class,
            names = {"NATIVE", "CANONICAL"})
    void timersSurviveSwitchingTheTimerService(
            SavepointFormatType format, @InjectClusterClient ClusterClient<?> client)
            throws Exception {
        Path dir = Files.createTempDirectory("timer-factory-");
        try {
            run(format, dir, client);
        } finally {
            org.apache.flink.util.FileUtils.deleteDirectoryQuietly(dir.toFile());
        }
    }

    private void run(SavepointFormatType format, Path dir, ClusterClient<?> client)
            throws Exception {
        fired.clear();
        duplicates.clear();
        String savepoint = null;
        for (int phase = 0; phase < PHASE_END.length; phase++) {
            registered.set(0);
            StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
            env.setParallelism(PARALLELISM[phase]);
            env.setMaxParallelism(128);
            TestJobs.setStateBackend(
                    env,
                    new NativeRocksDBBackend(dir.resolve("checkpoints").toUri().toString())
                            .setRocksDBOption(
                                    "state.backend.rocksdb.timer-service.factory", FACTORY[phase]));
            boolean last = phase == PHASE_END.length - 1;
            env.addSource(new PhaseSource(PHASE_END[phase], last))
                    .uid("source")
                    .setParallelism(1)
                    .keyBy(i -> (int) (i % KEYS))
                    .process(new TimerPerRecord())
                    .uid("timers")
                    .addSink(new FiredSink())
                    .uid("sink")
                    .setParallelism(1);
            JobGraph job = env.getStreamGraph().getJobGraph();
            if (savepoint != null) {
                job.setSavepointRestoreSettings(SavepointRestoreSettings.forPath(savepoint, false));
            }
            JobID id = client.submitJob(job).get(30, TimeUnit.SECONDS);
            long events = PHASE_END[phase] - (phase == 0 ? 0 : PHASE_END[phase - 1]);
            if (last) {
                JobResult result = client.requestJobResult(id).get(60, TimeUnit.SECONDS);
                assertThat(result.getSerializedThrowable()).isEmpty();
            } else {
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
                while (registered.get() < events && System.nanoTime() < deadline) {
                    Thread.sleep(10);
                }
                assertThat(registered.get()).as("timers of phase " + phase).isEqualTo(events);
                assertThat(fired).as("no watermark yet").isEmpty();
                savepoint =
                        client.stopWithSavepoint(
                                        id,
                                        false,
                                        dir.resolve("savepoints").toUri().toString(),
                                        format)
                                .get(60, TimeUnit.SECONDS);
                client.requestJobResult(id).get(60, TimeUnit.SECONDS);
            }
        }
        assertThat(duplicates).isEmpty();
        assertThat(fired).hasSize((int) PHASE_END[PHASE_END.length - 1]);
        fired.forEach((ts, key) -> assertThat(key).isEqualTo((int) (ts % KEYS)));
    }

    /** Registers an event-time timer at each record's number; emits the timers that fire. */
    static final class TimerPerRecord extends KeyedProcessFunction<Integer, Long, long[]> {
        @Override
        public void processElement(Long value, Context ctx, Collector<long[]> out) {
            ctx.timerService().registerEventTimeTimer(value);
            registered.incrementAndGet();
        }

        @Override
        public void onTimer(long timestamp, OnTimerContext ctx, Collector<long[]> out) {
            out.collect(new long[] {timestamp, ctx.getCurrentKey()});
        }
    }

    static final class FiredSink implements TestSink<long[]> {
        @Override
        public void invoke(long[] value, Context context) {
            if (fired.putIfAbsent(value[0], (int) value[1]) != null) {
                synchronized (duplicates) {
                    duplicates.add(value[0]);
                }
            }
        }
    }
}
