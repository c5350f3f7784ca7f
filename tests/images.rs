//! Users' own images end to end: MNIST written out as a folder of PNG files and as an `.npz`
//! trains to the same metrics, bit for bit, as the IDX files; a colour folder trains a conv
//! model and draws colour pictures; every kind of bad input gets one clear line and leaves
//! nothing behind.

use std::path::{Path, PathBuf};

use ndarray::{Array3, Array4};
use ndarray_npy::NpzWriter;
use vae::data::{Dataset, Split};

mod common;

use common::{assert_clean_error, ok, run, scratch};

/// Writes a grey (C = 1) or colour (C = 3) image [C, H, W] as a PNG file.
fn write_png(path: &Path, planes: &[u8], c: usize, h: usize, w: usize) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let hw = h * w;
    let (color, bytes) = match c {
        1 => (png::ColorType::Grayscale, planes.to_vec()),
        _ => (png::ColorType::Rgb, (0..hw).flat_map(|p| [planes[p], planes[hw + p], planes[2 * hw + p]]).collect()),
    };
    let mut enc = png::Encoder::new(std::fs::File::create(path).unwrap(), w as u32, h as u32);
    enc.set_color(color);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header().unwrap().write_image_data(&bytes).unwrap();
}

/// A split written as `<dir>/<name>/00000.png`, … in its order (no class folders).
fn write_split(dir: &Path, name: &str, s: &Split) {
    for (i, img) in s.images.chunks_exact(s.pixels()).enumerate() {
        write_png(&dir.join(name).join(format!("{i:05}.png")), img, s.channels, s.rows, s.cols);
    }
}

/// The first `n_train` and `n_test` MNIST images.
fn mnist_slice(n_train: usize, n_test: usize) -> (Split, Split) {
    let data = Dataset::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/mnist")).unwrap();
    (data.train.truncated(n_train), data.test.truncated(n_test))
}

/// metrics.csv without the seconds column: the numbers that must agree bit for bit.
fn losses(out: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    text.lines().map(|l| l.rsplit_once(',').unwrap().0.to_string()).collect()
}

/// `train` on `data` into `out`: an MLP 784-64-4, batches of 32, one epoch unless `extra` says.
fn train_args(data: &Path, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> = ["train", "--data", data.to_str().unwrap(), "--hidden", "64", "--latent-dim", "4"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    a.extend(["--batch-size", "32", "--out", out.to_str().unwrap()].map(String::from));
    if !extra.contains(&"--cache") {
        a.push("--no-cache".into()); // the user's own cache folder stays untouched by tests
    }
    a.extend(extra.iter().map(|s| s.to_string()));
    if !extra.contains(&"--epochs") {
        a.extend(["--epochs", "1"].map(String::from));
    }
    a
}

#[test]
fn mnist_as_png_files_and_as_npz_trains_bit_for_bit_as_the_idx_files() {
    let root = scratch("mnist-as-files");
    let (train, test) = mnist_slice(1000, 200);
    let pngs = root.join("pngs");
    write_split(&pngs, "train", &train);
    write_split(&pngs, "test", &test);
    let npz = root.join("mnist.npz");
    {
        let mut w = NpzWriter::new(std::fs::File::create(&npz).unwrap());
        let images = |s: &Split| Array3::from_shape_vec((s.len(), 28, 28), s.images.clone()).unwrap();
        w.add_array("x_train", &images(&train)).unwrap();
        w.add_array("x_test", &images(&test)).unwrap();
        w.add_array("y_train", &ndarray::Array1::from(train.labels.iter().map(|&l| l as i64).collect::<Vec<_>>()))
            .unwrap();
        w.add_array("y_test", &ndarray::Array1::from(test.labels.clone())).unwrap();
        w.finish().unwrap();
    }
    let idx = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets/mnist");
    let runs: Vec<PathBuf> = ["idx", "png", "npz"].iter().map(|n| root.join(format!("run-{n}"))).collect();
    ok(&run(&train_args(&idx, &runs[0], &["--train-limit", "1000", "--test-limit", "200", "--epochs", "2"])));
    let o = run(&train_args(&pngs, &runs[1], &["--epochs", "2"]));
    ok(&o);
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(
        said.contains("image folder") && said.contains("1000 training + 200 test images, 28×28, 1 channel"),
        "{said}"
    );
    let o = run(&train_args(&npz, &runs[2], &["--epochs", "2"]));
    ok(&o);
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(said.contains("NumPy .npz") && said.contains("10 classes"), "{said}");
    let reference = losses(&runs[0]);
    assert_eq!(reference.len(), 3, "a header and two epochs");
    assert_eq!(losses(&runs[1]), reference, "PNG folder against IDX");
    assert_eq!(losses(&runs[2]), reference, "npz against IDX");
}

#[test]
fn a_colour_folder_with_classes_trains_a_conv_model_and_draws_in_colour() {
    let root = scratch("shapes");
    let data = root.join("shapes");
    let (train, test) = (vae::data::shapes::generate(300, 32, 1), vae::data::shapes::generate(60, 32, 2));
    for (name, s) in [("train", &train), ("test", &test)] {
        for (i, (img, &l)) in s.images.chunks_exact(s.pixels()).zip(&s.labels).enumerate() {
            let class = vae::data::shapes::CLASSES[l as usize];
            write_png(&data.join(name).join(class).join(format!("{i:05}.png")), img, 3, 32, 32);
        }
    }
    std::fs::write(data.join("train").join("README.txt"), "not an image").unwrap();
    let out = root.join("run");
    let o = run(&train_args(&data, &out, &["--model", "conv"]));
    ok(&o);
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(said.contains("32×32, 3 channels (colour), 3 classes (circle 120, square 120, triangle 120)"), "{said}");
    assert!(said.contains("1 files that are not images skipped"), "{said}");
    let decoder = png::Decoder::new(std::fs::File::open(out.join("reconstructions.png")).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    reader.next_frame(&mut buf).unwrap();
    assert!(buf.chunks_exact(3).any(|p| p[0] != p[1] || p[1] != p[2]), "reconstructions.png has colour");

    // The same folder as grey images, and shrunk to 16×16: the model follows the data's shape.
    let out = root.join("run-grey16");
    let o = run(&train_args(&data, &out, &["--channels", "1", "--image-size", "16"]));
    ok(&o);
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(said.contains("16×16, 1 channel (grey)") && said.contains("360 images converted"), "{said}");
    assert!(said.contains("360 images cropped and resized"), "{said}");
    // The model's commands prepare its data as its run did (the model file says how); told
    // otherwise, they name the flags that prepare it.
    let model = out.join("model.safetensors");
    let eval = ["eval", "--checkpoint", model.to_str().unwrap(), "--data", data.to_str().unwrap()];
    let o = run(&eval);
    ok(&o);
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(said.contains("mlp 256-64-4") && said.contains("60 images from"), "{said}");
    assert_clean_error(
        &run(&[&eval[..], &["--image-size", "32"]].concat()),
        "--image-size 16 --channels 1 prepares it so",
    );
}

/// The library's one call (`vae::run::train`, as examples/train_folder.rs makes it) and
/// `vae-cli train` with the same recipe write the same metrics, bit for bit: the command line
/// adds flags and reports, nothing else.
#[test]
fn one_library_call_trains_a_folder_to_the_numbers_of_the_command_line() {
    let root = scratch("library-run");
    let data = root.join("shapes");
    let split = vae::data::shapes::generate(240, 32, 3);
    write_split(&data, "all", &split); // no split of its own: a tenth held out, as both say
    let cli = root.join("cli");
    let flags = ["--model", "conv", "--likelihood", "dlogistic", "--epochs", "2", "--batch-size", "32"];
    let args = [&["train", "--data", data.to_str().unwrap(), "--no-cache", "--out", cli.to_str().unwrap()], &flags[..]];
    ok(&run(&args.concat()));

    let set = Dataset::open(&data, &vae::data::Prep::default(), &|_, _| {}).unwrap();
    let mut recipe = vae::run::Recipe { model: vae::run::recipe::ModelKind::Conv, ..Default::default() }
        .with_likelihood(vae::Likelihood::DLogistic { mixtures: 1 });
    recipe.settings.batch_size = 32;
    (recipe.settings.epochs, recipe.settings.schedule_epochs) = (2, 2);
    let library = root.join("library");
    let trained = vae::run::train(&recipe, set, &library, &mut vae::run::Quiet).unwrap();
    assert_eq!(trained.state.epochs_done, 2);
    let reference = losses(&cli);
    assert_eq!(reference.len(), 3, "a header and two epochs");
    assert_eq!(losses(&library), reference);
    // A second call into the same folder is refused: the run there is kept.
    let set = Dataset::open(&data, &vae::data::Prep::default(), &|_, _| {}).unwrap();
    let again = vae::run::train(&recipe, set, &library, &mut vae::run::Quiet).err().unwrap().to_string();
    assert!(again.contains("already holds a run"), "{again}");
}

#[test]
fn a_folder_without_a_split_holds_out_a_fixed_fraction_and_says_so() {
    let root = scratch("fraction");
    let data = root.join("flat");
    let s = vae::data::shapes::generate(50, 8, 5);
    write_split(&data, "all", &s);
    let prep = vae::data::Prep { test_fraction: 0.2, ..Default::default() };
    let a = Dataset::open(&data, &prep, &|_, _| {}).unwrap();
    let b = Dataset::open(&data, &prep, &|_, _| {}).unwrap();
    assert_eq!((a.train.len(), a.test.len()), (40, 10));
    assert_eq!(a.info.files, b.info.files, "the same files in the same splits every time");
    let (train_files, test_files) = a.info.files.unwrap();
    assert!(train_files.iter().all(|f| !test_files.contains(f)));
    assert!(a.test.images != b.train.images[..a.test.images.len()], "the test images are not the first ones");
    assert!(Dataset::open(&data, &prep, &|_, _| {}).unwrap().describe().contains("test = a fraction 0.2"));
}

/// Runs `train` on `data` and checks the error and that no run folder was made.
fn refused(data: &Path, extra: &[&str], needle: &str) {
    let out = data.parent().unwrap().join(format!("run-{}", data.file_name().unwrap().to_string_lossy()));
    assert_clean_error(&run(&train_args(data, &out, extra)), needle);
    assert!(!out.exists(), "{} was created", out.display());
}

#[test]
fn bad_images_and_arrays_get_one_clear_line_and_nothing_is_written() {
    let root = scratch("bad-images");
    // An empty folder.
    let empty = root.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    refused(&empty, &[], "no images found");
    // Images of two sizes without --image-size.
    let mixed = root.join("mixed");
    write_png(&mixed.join("a.png"), &[0; 16], 1, 4, 4);
    write_png(&mixed.join("b.png"), &[0; 20], 1, 4, 5);
    refused(&mixed, &[], "give --image-size");
    // A truncated PNG: named, unless skipped.
    let broken = root.join("broken");
    for i in 0..12 {
        write_png(&broken.join(format!("{i:02}.png")), &[i * 20; 16], 1, 4, 4);
    }
    let bytes = std::fs::read(broken.join("05.png")).unwrap();
    std::fs::write(broken.join("05.png"), &bytes[..bytes.len() / 2]).unwrap();
    refused(&broken, &[], "05.png: not a readable image");
    let out = root.join("run-skip");
    let o = run(&train_args(&broken, &out, &["--skip-bad"]));
    ok(&o);
    assert!(String::from_utf8_lossy(&o.stdout).contains("1 unreadable images skipped"));
    // A conv model that cannot take the size (stride-2 layers need a side divisible by 4).
    let odd = root.join("odd");
    for i in 0..10 {
        write_png(&odd.join(format!("{i}.png")), &[i * 9; 30], 1, 5, 6);
    }
    refused(&odd, &["--model", "conv", "--image-size", "5"], "invalid model configuration");
    // Arrays of the wrong type or rank.
    let floats = root.join("floats.npz");
    let mut w = NpzWriter::new(std::fs::File::create(&floats).unwrap());
    w.add_array("x", &Array3::<f32>::zeros((10, 4, 4))).unwrap();
    w.finish().unwrap();
    refused(&floats, &[], "uint8");
    let rank = root.join("rank.npz");
    let mut w = NpzWriter::new(std::fs::File::create(&rank).unwrap());
    w.add_array("x", &Array4::<u8>::zeros((10, 4, 4, 5))).unwrap();
    w.finish().unwrap();
    refused(&rank, &[], "images must be (N, H, W)");
    // A CIFAR-10 batch cut short.
    let cifar = root.join("cifar");
    std::fs::create_dir_all(&cifar).unwrap();
    for f in ["data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin"] {
        std::fs::write(cifar.join(f), vec![1u8; 3073 * 2]).unwrap();
    }
    std::fs::write(cifar.join("test_batch.bin"), vec![1u8; 3073 + 100]).unwrap();
    refused(&cifar, &[], "test_batch.bin: 3173 bytes is not a whole number of 3073-byte records");
    // Settings out of range.
    refused(&mixed, &["--channels", "2"], "--channels must be 1");
    refused(&mixed, &["--test-fraction", "1.5"], "--test-fraction must lie");
}

#[test]
fn a_second_run_reads_the_decoded_folder_from_the_cache_until_a_file_changes() {
    let root = scratch("cache");
    let data = root.join("shapes");
    let s = vae::data::shapes::generate(40, 8, 9);
    write_split(&data, "train", &s.truncated(30));
    write_split(&data, "test", &s.select(&(30..40).collect::<Vec<_>>()));
    let cache = root.join("cache");
    let said = |name: &str| {
        let o = run(&train_args(&data, &root.join(name), &["--cache", cache.to_str().unwrap()]));
        ok(&o);
        String::from_utf8_lossy(&o.stdout).lines().next().unwrap().to_string()
    };
    assert!(said("first").contains("decoded images cached in"), "the first run decodes and writes");
    let files: Vec<_> = std::fs::read_dir(&cache).unwrap().collect();
    assert_eq!(files.len(), 1, "one cache file per folder and settings");
    assert!(said("second").contains("decoded images read from the cache"));
    // The metrics of a run from the cache are those of a run that decoded.
    assert_eq!(losses(&root.join("first")), losses(&root.join("second")));
    // A changed image invalidates the cache: decoded again, and the file rewritten in place.
    write_png(&data.join("train").join("00003.png"), &[7; 3 * 64], 3, 8, 8);
    assert!(said("third").contains("decoded images cached in"));
    assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 1);
    // A damaged cache file is decoded past, never trusted.
    let file = std::fs::read_dir(&cache).unwrap().next().unwrap().unwrap().path();
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() - 5]).unwrap();
    assert!(said("fourth").contains("decoded images cached in"));
    assert!(!data.read_dir().unwrap().any(|e| e.unwrap().path().extension().is_some_and(|x| x == "vaedata")));
}
