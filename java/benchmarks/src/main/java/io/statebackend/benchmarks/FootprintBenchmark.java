package io.statebackend.benchmarks;

import java.io.File;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.Locale;
import java.util.stream.Stream;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeutils.base.LongSerializer;
import org.apache.flink.runtime.state.VoidNamespace;
import org.apache.flink.runtime.state.VoidNamespaceSerializer;

/**
 * The memory a backend needs to hold {@code entries} value-state entries ({@code Long} key, {@code
 * Long} value, {@code VoidNamespace}, 2 key groups: the state benchmarks' shapes): JVM heap in use
 * after a full GC, plus the process's resident memory outside the Java heap, both as growth over
 * the empty backend; and for the RocksDB backends the bytes in their working directories.
 *
 * <p>Run in a JVM whose heap is committed and touched up front ({@code -Xms} = {@code -Xmx}, {@code
 * -XX:+AlwaysPreTouch}): then the growth of the resident set is native memory only (RocksDB's
 * memtables and block cache, our heap store), not the Java heap's pages. One backend per JVM
 * (scripts/bench-flink runs one per backend); the JSON result is the last line of stdout.
 *
 * <p>Usage: {@code FootprintBenchmark BACKEND [ENTRIES]} (10,000,000 by default).
 */
public final class FootprintBenchmark {
    private FootprintBenchmark() {}

    public static void main(String[] args) throws Exception {
        BackendType type = BackendType.valueOf(args[0]);
        int entries = args.length > 1 ? Integer.parseInt(args[1]) : 10_000_000;
        String json;
        try (Backends backends = Backends.create(type)) {
            ValueState<Long> state =
                    backends.keyed.getPartitionedState(
                            VoidNamespace.INSTANCE,
                            VoidNamespaceSerializer.INSTANCE,
                            new ValueStateDescriptor<>("values", LongSerializer.INSTANCE));
            // The empty backend (and one write, so lazily created structures exist) is the
            // baseline.
            backends.keyed.setCurrentKey(-1L);
            state.update(-1L);
            long heap0 = heapUsedAfterGc();
            long rss0 = residentBytes();
            long t0 = System.nanoTime();
            for (long k = 0; k < entries; k++) {
                backends.keyed.setCurrentKey(k);
                state.update(k);
            }
            double fillSeconds = (System.nanoTime() - t0) / 1e9;
            long heap = heapUsedAfterGc() - heap0;
            long rss = residentBytes() - rss0;
            long disk = directoryBytes(backends.root());
            // Still reachable: the measurement must not see the state collected.
            backends.keyed.setCurrentKey(entries - 1L);
            if (state.value() != entries - 1L) {
                throw new IllegalStateException(type + ": wrong value read back");
            }
            json =
                    String.format(
                            Locale.ROOT,
                            "{\"backend\":\"%s\",\"entries\":%d,\"fillSeconds\":%.2f,"
                                    + "\"heapBytes\":%d,\"nativeBytes\":%d,\"diskBytes\":%d}",
                            type,
                            entries,
                            fillSeconds,
                            heap,
                            rss,
                            disk);
        }
        System.out.println(json);
        System.exit(0);
    }

    private static long heapUsedAfterGc() throws InterruptedException {
        for (int i = 0; i < 3; i++) {
            System.gc();
            Thread.sleep(100);
        }
        return ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getUsed();
    }

    /** VmRSS of this process, from /proc/self/status. */
    private static long residentBytes() throws IOException {
        for (String line : Files.readAllLines(Paths.get("/proc/self/status"))) {
            if (line.startsWith("VmRSS:")) {
                return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
            }
        }
        throw new IOException("no VmRSS in /proc/self/status");
    }

    private static long directoryBytes(File root) throws IOException {
        try (Stream<java.nio.file.Path> files = Files.walk(root.toPath())) {
            return files.filter(Files::isRegularFile).mapToLong(p -> p.toFile().length()).sum();
        }
    }
}
