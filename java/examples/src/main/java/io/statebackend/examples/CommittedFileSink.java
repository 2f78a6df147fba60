package io.statebackend.examples;

import java.io.BufferedWriter;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.Collection;
import java.util.List;
import org.apache.flink.api.connector.sink2.Committer;
import org.apache.flink.api.connector.sink2.CommitterInitContext;
import org.apache.flink.api.connector.sink2.CommittingSinkWriter;
import org.apache.flink.api.connector.sink2.SinkWriter;
import org.apache.flink.api.connector.sink2.SupportsCommitter;
import org.apache.flink.api.connector.sink2.WriterInitContext;
import org.apache.flink.core.io.SimpleVersionedSerializer;

/**
 * An exactly-once sink of text lines in Flink's Sink V2 API (two-phase commit), kept to what the
 * demo needs: a much reduced {@code FileSink}.
 *
 * <p>Each writer subtask appends its records to a file in the staging directory. At a checkpoint
 * the file is closed and its name becomes a committable, stored in the checkpoint; when the
 * checkpoint completes, the committer moves the file into the output directory. So the output holds
 * exactly the records of completed checkpoints (and, at the end of the input, of the final one).
 * When the job fails, what was written after the last completed checkpoint stays in staging, never
 * committed, and the records replayed after the restore are written and committed instead.
 *
 * <p>Commits are idempotent: after a restore Flink may hand the committer a committable again (the
 * checkpoint completed, but the job failed before its commit was done).
 *
 * <p>File names are {@code part-<subtask>-<attempt>-<n>}, unique within one run of the job; a
 * production sink would add a random or job-specific part and sync files before committing them.
 */
final class CommittedFileSink extends FlinkLine.SinkBase<String>
        implements SupportsCommitter<String> {
    private static final long serialVersionUID = 1L;

    private final String staging;
    private final String output;

    /** Records go through {@code staging} into {@code output}; both directories must exist. */
    CommittedFileSink(Path staging, Path output) {
        this.staging = staging.toString();
        this.output = output.toString();
    }

    @Override
    public SinkWriter<String> createWriter(WriterInitContext context) throws IOException {
        return writer(context);
    }

    /**
     * Also Flink 1.20's deprecated {@code createWriter(Sink.InitContext)}: see {@link FlinkLine}.
     */
    SinkWriter<String> writer(org.apache.flink.api.connector.sink2.InitContext context) {
        String prefix =
                "part-"
                        + context.getTaskInfo().getIndexOfThisSubtask()
                        + "-"
                        + context.getTaskInfo().getAttemptNumber()
                        + "-";
        return new StagingWriter(Path.of(staging), prefix);
    }

    @Override
    public Committer<String> createCommitter(CommitterInitContext context) {
        return new MovingCommitter(Path.of(staging), Path.of(output));
    }

    @Override
    public SimpleVersionedSerializer<String> getCommittableSerializer() {
        return new FileNameSerializer();
    }

    /** Writes a file per checkpoint interval; the file's name is the committable. */
    private static final class StagingWriter implements CommittingSinkWriter<String, String> {
        private final Path staging;
        private final String prefix;
        private int files;
        private String currentName;
        private BufferedWriter current;

        StagingWriter(Path staging, String prefix) {
            this.staging = staging;
            this.prefix = prefix;
        }

        @Override
        public void write(String element, Context context) throws IOException {
            if (current == null) {
                currentName = prefix + files++;
                current =
                        Files.newBufferedWriter(
                                staging.resolve(currentName),
                                StandardCharsets.UTF_8,
                                StandardOpenOption.CREATE_NEW,
                                StandardOpenOption.WRITE);
            }
            current.write(element);
            current.newLine();
            // Written through at once: a process killed between checkpoints (scripts/cluster-test
            // kills a TaskManager) leaves in staging what it wrote and never committed.
            current.flush();
        }

        @Override
        public void flush(boolean endOfInput) throws IOException {
            if (current != null) {
                current.flush();
            }
        }

        /** Called at each checkpoint (and at the end of the input), after {@link #flush}. */
        @Override
        public Collection<String> prepareCommit() throws IOException {
            if (current == null) {
                return List.of();
            }
            current.close();
            current = null;
            return List.of(currentName);
        }

        /** Also called when the task fails or is cancelled: the open file stays in staging. */
        @Override
        public void close() throws IOException {
            if (current != null) {
                current.close();
                current = null;
            }
        }
    }

    /** Moves a committed file from staging into the output directory. */
    private static final class MovingCommitter implements Committer<String> {
        private final Path staging;
        private final Path output;

        MovingCommitter(Path staging, Path output) {
            this.staging = staging;
            this.output = output;
        }

        @Override
        public void commit(Collection<CommitRequest<String>> requests) throws IOException {
            for (CommitRequest<String> request : requests) {
                Path from = staging.resolve(request.getCommittable());
                Path to = output.resolve(request.getCommittable());
                if (Files.exists(from)) {
                    Files.move(from, to, StandardCopyOption.ATOMIC_MOVE);
                } else if (Files.exists(to)) {
                    request.signalAlreadyCommitted();
                } else {
                    request.signalFailedWithKnownReason(
                            new FileNotFoundException(from + " is gone and was never committed"));
                }
            }
        }

        @Override
        public void close() {}
    }

    /** A committable is a file name, stored in checkpoints as UTF-8. */
    private static final class FileNameSerializer implements SimpleVersionedSerializer<String> {
        @Override
        public int getVersion() {
            return 1;
        }

        @Override
        public byte[] serialize(String name) {
            return name.getBytes(StandardCharsets.UTF_8);
        }

        @Override
        public String deserialize(int version, byte[] serialized) {
            return new String(serialized, StandardCharsets.UTF_8);
        }
    }
}
