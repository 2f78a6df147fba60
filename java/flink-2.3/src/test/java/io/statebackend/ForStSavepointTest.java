package io.statebackend;

import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.nio.file.Path;
import java.util.List;
import org.apache.flink.api.common.JobID;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.runtime.operators.testutils.MockEnvironment;
import org.apache.flink.runtime.operators.testutils.MockEnvironmentBuilder;
import org.apache.flink.runtime.state.AbstractKeyedStateBackend;
import org.apache.flink.runtime.state.CheckpointStorageAccess;
import org.apache.flink.runtime.state.KeyGroupRange;
import org.apache.flink.runtime.state.KeyedStateHandle;
import org.apache.flink.runtime.state.storage.FileSystemCheckpointStorage;
import org.apache.flink.state.forst.ForStOptions;
import org.apache.flink.state.forst.ForStStateBackend;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Flink 2.3's ForSt backend neither writes canonical savepoints nor restores them, so no backend
 * (Flink's or ours) can move state to or from ForSt through one. This pins both refusals: when a
 * Flink release lifts them, this test fails and {@link CanonicalSavepointTest} should take ForSt in
 * (docs/flink.md, "Flink 2.x").
 */
class ForStSavepointTest {
    @TempDir Path dir;

    private static ForStStateBackend forSt() {
        Configuration config = new Configuration();
        config.set(ForStOptions.USE_MANAGED_MEMORY, false);
        return new ForStStateBackend().configure(config, ForStSavepointTest.class.getClassLoader());
    }

    @Test
    void forStRefusesCanonicalSavepointsBothWays() throws Exception {
        KeyGroupRange all = KeyGroupRange.of(0, 127);
        try (MockEnvironment env =
                new MockEnvironmentBuilder()
                        .setMaxParallelism(128)
                        .setManagedMemorySize(64 << 20)
                        .build()) {
            CheckpointStorageAccess storage =
                    new FileSystemCheckpointStorage(dir.resolve("savepoints").toUri())
                            .createCheckpointStorage(new JobID());
            storage.initializeBaseLocationsForCheckpoint();
            // ForSt asks the environment for the job's checkpoint storage.
            env.setCheckpointStorageAccess(storage);

            AbstractKeyedStateBackend<String> forSt =
                    CanonicalSavepointTest.create(forSt(), env, all, List.of());
            try {
                CanonicalSavepointTest.fill(forSt);
                assertThatThrownBy(() -> CanonicalSavepointTest.savepoint(forSt, storage, 1))
                        .isInstanceOf(UnsupportedOperationException.class)
                        .hasMessageContaining("Canonical savepoints are not supported");
            } finally {
                forSt.dispose();
            }

            AbstractKeyedStateBackend<String> ours =
                    CanonicalSavepointTest.create(
                            new NativeRocksDBBackend(dir.resolve("rocksdb").toUri().toString()),
                            env,
                            all,
                            List.of());
            KeyedStateHandle savepoint;
            try {
                CanonicalSavepointTest.fill(ours);
                savepoint = CanonicalSavepointTest.savepoint(ours, storage, 2);
            } finally {
                ours.dispose();
            }
            assertThatThrownBy(
                            () ->
                                    CanonicalSavepointTest.create(
                                                    forSt(), env, all, List.of(savepoint))
                                            .dispose())
                    .hasStackTraceContaining("Not support restoring yet for ForStStateBackend");
        }
    }
}
